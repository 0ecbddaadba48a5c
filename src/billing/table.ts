import type { ColumnType, Generated } from 'kysely';

/** numeric(78,0): written and read as a decimal string. */
type Numeric = ColumnType<string, string, string>;
type NullableNumeric = ColumnType<string | null, string | null | undefined, string | null>;
/** A date column holding the first day of a month; written as `YYYY-MM-01`. */
type MonthDate = ColumnType<Date, string, string>;
/** text not null default '': inserting may leave it out. */
type TextWithDefault = ColumnType<string, string | undefined, string>;

export interface PlansTable {
  id: string;
  name: string;
  monthly_fee_usd_micros: Numeric;
  included_usd_micros: Numeric;
  prepaid: ColumnType<boolean, boolean | undefined, boolean>;
  is_default: ColumnType<boolean, boolean | undefined, boolean>;
  /** Front-door limits (platform/limits.ts PlanLimits); `{}`: the settings apply. */
  limits: ColumnType<unknown, string | undefined, string>;
  created_at: ColumnType<Date, never, never>;
}

export interface PlanPricesTable {
  plan_id: string;
  pipeline: string;
  model_id: string;
  unit: string;
  currency: 'wei' | 'usd_micros';
  amount: Numeric;
  per_units: Numeric;
}

export interface SubscriptionsTable {
  account_id: string;
  effective_month: MonthDate;
  plan_id: string;
  created_at: ColumnType<Date, never, never>;
}

export type LedgerKind =
  'top_up' | 'grant' | 'statement' | 'adjustment' | 'recharge' | 'refund' | 'dispute';

export interface LedgerEntriesTable {
  id: Generated<bigint>;
  account_id: string;
  kind: LedgerKind;
  amount_usd_micros: Numeric;
  reference: string;
  memo: string | null;
  created_at: ColumnType<Date, never, never>;
}

export interface SpendCapsTable {
  account_id: string;
  /** '' for every app (the schema's default), so the primary key covers every row. */
  app_id: TextWithDefault;
  end_user_id: TextWithDefault;
  monthly_cap_wei: Numeric;
  updated_at: ColumnType<Date, never, Date>;
}

export interface BillingClosesTable {
  month: MonthDate;
  cutoff: Date;
  closed_at: ColumnType<Date, never, never>;
  statements: number;
}

export interface StatementsTable {
  id: string;
  account_id: string;
  month: MonthDate;
  plan_id: string | null;
  closed_at: Date;
  eth_usd_answer: Numeric;
  eth_usd_decimals: number;
  rate_source: string;
  rate_updated_at: Date;
  fee_wei: Numeric;
  usage_usd_micros: Numeric;
  monthly_fee_usd_micros: Numeric;
  included_usd_micros: Numeric;
  included_applied_usd_micros: Numeric;
  credits_applied_usd_micros: Numeric;
  total_usd_micros: Numeric;
  billing_mode: ColumnType<BillingMode, BillingMode | undefined, BillingMode>;
  /** Null on statements closed before balances were settled (migration 0044). */
  opening_balance_usd_micros: NullableNumeric;
  credits_usd_micros: NullableNumeric;
  debits_usd_micros: NullableNumeric;
  closing_balance_usd_micros: NullableNumeric;
}

/** Which statement month settled each ledger entry (one month per entry, never changed). */
export interface LedgerSettlementsTable {
  ledger_entry_id: bigint;
  account_id: string;
  month: MonthDate;
}

export interface StatementLinesTable {
  statement_id: string;
  line: number;
  origin_month: MonthDate;
  late: boolean;
  pipeline: string;
  model_id: string;
  unit: string;
  events: ColumnType<bigint, string, never>;
  quantity: Numeric;
  fee_wei: Numeric;
  price_currency: 'wei' | 'usd_micros' | 'cost';
  price_amount: Numeric;
  price_per_units: Numeric;
  charge_wei: ColumnType<string | null, string | null, never>;
  charge_usd_micros: Numeric;
}

export type SyncState =
  'pending' | 'invoiced' | 'finalized' | 'paid' | 'payment_failed' | 'skipped';

export interface StripeCustomersTable {
  account_id: string;
  customer_id: string;
  created_at: ColumnType<Date, never, never>;
}

export interface StripeSyncTable {
  statement_id: string;
  state: SyncState;
  invoice_id: string | null;
  items_pushed: ColumnType<number, number | undefined, number>;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: ColumnType<Date, Date | undefined, Date>;
  last_error: string | null;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface StripeEventsTable {
  id: string;
  type: string;
  received_at: ColumnType<Date, never, never>;
}

export type BillingMode = 'postpaid' | 'prepaid';

export interface BillingAccountsTable {
  account_id: string;
  mode: ColumnType<BillingMode, BillingMode | undefined, BillingMode>;
  auto_recharge: ColumnType<boolean, boolean | undefined, boolean>;
  recharge_threshold_usd_micros: ColumnType<string, string | undefined, string>;
  recharge_amount_usd_micros: ColumnType<string, string | undefined, string>;
  recharge_monthly_max_usd_micros: ColumnType<string, string | undefined, string>;
  payment_method_id: ColumnType<string | null, string | null | undefined, string | null>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface StripePaymentsTable {
  payment_intent_id: string;
  account_id: string;
  source: 'checkout' | 'recharge';
  amount_usd_micros: Numeric;
  created_at: ColumnType<Date, Date | undefined, never>;
}

export type RechargeState = 'pending' | 'succeeded' | 'failed';

export interface RechargesTable {
  window_key: string;
  account_id: string;
  month: MonthDate;
  amount_usd_micros: Numeric;
  state: RechargeState;
  payment_intent_id: string | null;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: Date;
  last_error: string | null;
  created_at: ColumnType<Date, Date, never>;
  updated_at: Date;
}
