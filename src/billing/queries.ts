// Billing SQL. Money columns are numeric(78,0) strings in SQL and bigint here.
import { parsePlanLimits } from '../platform/limits.ts';
import type { PlanLimits } from '../platform/limits.ts';
import { sql } from 'kysely';
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { Database } from '../database.ts';
import type { Price } from './pricing.ts';
import type {
  BillingMode,
  LedgerKind,
  StatementLinesTable,
  StatementsTable,
  SyncState,
} from './table.ts';

type Db = Kysely<Database> | Transaction<Database>;

/** Notifications that invalidate the spend view (caps, balances, subscriptions). */
export const BILLING_CHANNEL = 'tollhouse_billing';

export async function notifyBillingChanged(db: Db, what: string): Promise<void> {
  await sql`select pg_notify(${BILLING_CHANNEL}, ${what})`.execute(db);
}

export interface Plan {
  id: string;
  name: string;
  monthlyFeeUsdMicros: bigint;
  includedUsdMicros: bigint;
  prepaid: boolean;
  isDefault: boolean;
  /** Front-door limits for the plan's accounts; the only part of a plan that may change. */
  limits: PlanLimits;
  createdAt: Date;
  prices: Price[];
}

export async function insertPlan(trx: Transaction<Database>, plan: Omit<Plan, 'createdAt'>) {
  await trx
    .insertInto('plans')
    .values({
      id: plan.id,
      name: plan.name,
      monthly_fee_usd_micros: plan.monthlyFeeUsdMicros.toString(),
      included_usd_micros: plan.includedUsdMicros.toString(),
      prepaid: plan.prepaid,
      is_default: plan.isDefault,
      limits: JSON.stringify(plan.limits),
    })
    .execute();
  if (plan.prices.length > 0) {
    await trx
      .insertInto('plan_prices')
      .values(
        plan.prices.map((p) => ({
          plan_id: plan.id,
          pipeline: p.pipeline,
          model_id: p.modelId,
          unit: p.unit,
          currency: p.currency,
          amount: p.amount.toString(),
          per_units: p.perUnits.toString(),
        })),
      )
      .execute();
  }
}

export async function updatePlanLimits(
  trx: Transaction<Database>,
  id: string,
  limits: PlanLimits,
): Promise<boolean> {
  const result = await trx
    .updateTable('plans')
    .set({ limits: JSON.stringify(limits) })
    .where('id', '=', id)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function clearDefaultPlan(trx: Transaction<Database>) {
  await trx
    .updateTable('plans')
    .set({ is_default: false })
    .where('is_default', '=', true)
    .execute();
}

export async function findPlans(db: Db, ids?: readonly string[]): Promise<Plan[]> {
  let query = db.selectFrom('plans').selectAll();
  if (ids !== undefined) {
    if (ids.length === 0) return [];
    query = query.where('id', 'in', [...ids]);
  }
  const rows = await query.orderBy('created_at').orderBy('id').execute();
  if (rows.length === 0) return [];
  const prices = await db
    .selectFrom('plan_prices')
    .selectAll()
    .where(
      'plan_id',
      'in',
      rows.map((r) => r.id),
    )
    .execute();
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    monthlyFeeUsdMicros: BigInt(r.monthly_fee_usd_micros),
    includedUsdMicros: BigInt(r.included_usd_micros),
    prepaid: r.prepaid,
    isDefault: r.is_default,
    limits: parsePlanLimits(r.limits),
    createdAt: r.created_at,
    prices: prices
      .filter((p) => p.plan_id === r.id)
      .map((p) => ({
        pipeline: p.pipeline,
        modelId: p.model_id,
        unit: p.unit,
        currency: p.currency,
        amount: BigInt(p.amount),
        perUnits: BigInt(p.per_units),
      })),
  }));
}

export interface Subscription {
  accountId: string;
  planId: string;
  /** YYYY-MM */
  effectiveMonth: string;
  createdAt: Date;
}

const month = (d: Date) => d.toISOString().slice(0, 7);

export async function findSubscriptions(db: Db, accountId: string): Promise<Subscription[]> {
  const rows = await db
    .selectFrom('subscriptions')
    .selectAll()
    .where('account_id', '=', accountId)
    .orderBy('effective_month')
    .execute();
  return rows.map((r) => ({
    accountId: r.account_id,
    planId: r.plan_id,
    effectiveMonth: month(r.effective_month),
    createdAt: r.created_at,
  }));
}

/** Every account's plan in `forMonth` (the latest subscription effective on or before it). */
export async function findEffectivePlans(db: Db, forMonth: string): Promise<Map<string, string>> {
  const rows = await sql<{ account_id: string; plan_id: string }>`
    select distinct on (account_id) account_id, plan_id from subscriptions
    where effective_month <= ${`${forMonth}-01`}::date
    order by account_id, effective_month desc`.execute(db);
  return new Map(rows.rows.map((r) => [r.account_id, r.plan_id]));
}

export async function upsertSubscription(
  trx: Transaction<Database>,
  accountId: string,
  planId: string,
  effectiveMonth: string,
) {
  await trx
    .insertInto('subscriptions')
    .values({ account_id: accountId, plan_id: planId, effective_month: `${effectiveMonth}-01` })
    .onConflict((oc) =>
      oc.columns(['account_id', 'effective_month']).doUpdateSet({ plan_id: planId }),
    )
    .execute();
}

export interface LedgerEntry {
  id: bigint;
  accountId: string;
  kind: LedgerKind;
  amountUsdMicros: bigint;
  reference: string;
  memo: string | null;
  createdAt: Date;
}

/** Appends an entry unless one with the same reference exists; true when appended. */
export async function insertLedgerEntry(
  db: Db,
  entry: {
    accountId: string;
    kind: LedgerKind;
    amountUsdMicros: bigint;
    reference: string;
    memo?: string | null;
  },
): Promise<boolean> {
  const inserted = await db
    .insertInto('ledger_entries')
    .values({
      account_id: entry.accountId,
      kind: entry.kind,
      amount_usd_micros: entry.amountUsdMicros.toString(),
      reference: entry.reference,
      memo: entry.memo ?? null,
    })
    .onConflict((oc) => oc.column('reference').doNothing())
    .returning('id')
    .executeTakeFirst();
  return inserted !== undefined;
}

export async function findLedgerEntries(
  db: Db,
  accountId: string,
  limit: number,
): Promise<LedgerEntry[]> {
  const rows = await db
    .selectFrom('ledger_entries')
    .selectAll()
    .where('account_id', '=', accountId)
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    id: r.id,
    accountId: r.account_id,
    kind: r.kind,
    amountUsdMicros: BigInt(r.amount_usd_micros),
    reference: r.reference,
    memo: r.memo,
    createdAt: r.created_at,
  }));
}

/** One page of the account's ledger, newest first, strictly before the entry `beforeId`. */
export async function findLedgerPage(
  db: Db,
  accountId: string,
  limit: number,
  beforeId: bigint | null,
): Promise<LedgerEntry[]> {
  let q = db.selectFrom('ledger_entries').selectAll().where('account_id', '=', accountId);
  if (beforeId !== null) q = q.where('id', '<', beforeId.toString() as never);
  const rows = await q.orderBy('id', 'desc').limit(limit).execute();
  return rows.map((r) => ({
    id: BigInt(r.id),
    accountId: r.account_id,
    kind: r.kind,
    amountUsdMicros: BigInt(r.amount_usd_micros),
    reference: r.reference,
    memo: r.memo,
    createdAt: r.created_at,
  }));
}

/** Ledger balances (micro-dollars) of `accountIds`, or of every account with entries. */
export async function sumBalances(
  db: Db,
  accountIds?: readonly string[],
): Promise<Map<string, bigint>> {
  let query = db
    .selectFrom('ledger_entries')
    .select(['account_id', sql<string>`sum(amount_usd_micros)::text`.as('balance')])
    .groupBy('account_id');
  if (accountIds !== undefined) {
    if (accountIds.length === 0) return new Map();
    query = query.where('account_id', 'in', [...accountIds]);
  }
  const rows = await query.execute();
  return new Map(rows.map((r) => [r.account_id, BigInt(r.balance)]));
}

export interface SpendCap {
  accountId: string;
  /** null: the cap is on the whole account. */
  appId: string | null;
  /** null: the cap is on the app (or account); '*' every end user of the app. */
  endUserId: string | null;
  monthlyCapWei: bigint;
}

export async function findSpendCaps(db: Db, accountId?: string): Promise<SpendCap[]> {
  let query = db.selectFrom('spend_caps').selectAll();
  if (accountId !== undefined) query = query.where('account_id', '=', accountId);
  const rows = await query.orderBy('account_id').orderBy('app_id').orderBy('end_user_id').execute();
  return rows.map((r) => ({
    accountId: r.account_id,
    appId: r.app_id === '' ? null : r.app_id,
    endUserId: r.end_user_id === '' ? null : r.end_user_id,
    monthlyCapWei: BigInt(r.monthly_cap_wei),
  }));
}

export async function upsertSpendCap(trx: Transaction<Database>, cap: SpendCap) {
  await trx
    .insertInto('spend_caps')
    .values({
      account_id: cap.accountId,
      app_id: cap.appId ?? '',
      end_user_id: cap.endUserId ?? '',
      monthly_cap_wei: cap.monthlyCapWei.toString(),
    })
    .onConflict((oc) =>
      oc
        .columns(['account_id', 'app_id', 'end_user_id'])
        .doUpdateSet({ monthly_cap_wei: cap.monthlyCapWei.toString(), updated_at: new Date() }),
    )
    .execute();
}

export async function deleteSpendCap(
  trx: Transaction<Database>,
  cap: Pick<SpendCap, 'accountId' | 'appId' | 'endUserId'>,
): Promise<boolean> {
  const result = await trx
    .deleteFrom('spend_caps')
    .where('account_id', '=', cap.accountId)
    .where('app_id', '=', cap.appId ?? '')
    .where('end_user_id', '=', cap.endUserId ?? '')
    .executeTakeFirst();
  return result.numDeletedRows > 0n;
}

// ---- month close -------------------------------------------------------------------------

export interface CloseRecord {
  month: string;
  cutoff: Date;
  closedAt: Date;
  statements: number;
}

function toClose(r: {
  month: Date;
  cutoff: Date;
  closed_at: Date;
  statements: number;
}): CloseRecord {
  return {
    month: month(r.month),
    cutoff: r.cutoff,
    closedAt: r.closed_at,
    statements: r.statements,
  };
}

export async function findClose(db: Db, forMonth: string): Promise<CloseRecord | null> {
  const row = await db
    .selectFrom('billing_closes')
    .selectAll()
    .where('month', '=', `${forMonth}-01` as unknown as Date)
    .executeTakeFirst();
  return row === undefined ? null : toClose(row);
}

export async function findLastClose(db: Db): Promise<CloseRecord | null> {
  const row = await db
    .selectFrom('billing_closes')
    .selectAll()
    .orderBy('month', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row === undefined ? null : toClose(row);
}

/** Serialises month closes across replicas (transaction-scoped). */
export async function lockMonthClose(trx: Transaction<Database>) {
  await sql`select pg_advisory_xact_lock(hashtext('tollhouse_billing_close'))`.execute(trx);
}

/**
 * The close cutoff: a moment before which every transaction that may still insert usage
 * has started. Events are stamped with their transaction's start (recorded_at = now()), so
 * an event not yet visible to this close has recorded_at after the cutoff and is billed,
 * late, by the next close — never lost, never counted twice.
 */
export async function closeCutoff(trx: Transaction<Database>): Promise<Date> {
  const clock = await sql<{ t: Date }>`select clock_timestamp() as t`.execute(trx);
  const active = await sql<{ t: Date | null }>`
    select min(xact_start) as t from pg_stat_activity
    where datname = current_database() and pid <> pg_backend_pid() and xact_start is not null`.execute(
    trx,
  );
  const t0 = clock.rows[0]!.t;
  const oldest = active.rows[0]?.t ?? null;
  const earliest = oldest !== null && oldest.getTime() < t0.getTime() ? oldest : t0;
  // One millisecond earlier (JS dates have millisecond precision): strictly before any of them.
  return new Date(earliest.getTime() - 1);
}

export interface StatementLine {
  line: number;
  originMonth: string;
  late: boolean;
  pipeline: string;
  modelId: string;
  unit: string;
  events: bigint;
  quantity: bigint;
  feeWei: bigint;
  priceCurrency: 'wei' | 'usd_micros' | 'cost';
  priceAmount: bigint;
  pricePerUnits: bigint;
  chargeWei: bigint | null;
  chargeUsdMicros: bigint;
}

export interface Statement {
  id: string;
  accountId: string;
  month: string;
  planId: string | null;
  closedAt: Date;
  rate: { answer: bigint; decimals: number; source: string; updatedAt: Date };
  feeWei: bigint;
  usageUsdMicros: bigint;
  monthlyFeeUsdMicros: bigint;
  includedUsdMicros: bigint;
  includedAppliedUsdMicros: bigint;
  creditsAppliedUsdMicros: bigint;
  totalUsdMicros: bigint;
  /** How the month was settled: prepaid from the balance (nothing invoiced), or postpaid. */
  billingMode: BillingMode;
  /** The account's balance movement settled in this statement; null before migration 0044. */
  balance: StatementBalance | null;
}

/**
 * opening + credits + debits − creditsApplied = closing, to the micro-dollar: the ledger
 * entries settled in the statement's month (credits positive, debits negative, the statement's
 * own debit excluded), on top of everything settled in earlier months.
 */
export interface StatementBalance {
  openingUsdMicros: bigint;
  creditsUsdMicros: bigint;
  debitsUsdMicros: bigint;
  closingUsdMicros: bigint;
}

const CHUNK = 1_000;

export async function insertStatements(
  trx: Transaction<Database>,
  statements: ReadonlyArray<{ statement: Statement; lines: readonly StatementLine[] }>,
) {
  for (let i = 0; i < statements.length; i += CHUNK) {
    await trx
      .insertInto('statements')
      .values(
        statements.slice(i, i + CHUNK).map(({ statement: s }) => ({
          id: s.id,
          account_id: s.accountId,
          month: `${s.month}-01`,
          plan_id: s.planId,
          closed_at: s.closedAt,
          eth_usd_answer: s.rate.answer.toString(),
          eth_usd_decimals: s.rate.decimals,
          rate_source: s.rate.source,
          rate_updated_at: s.rate.updatedAt,
          fee_wei: s.feeWei.toString(),
          usage_usd_micros: s.usageUsdMicros.toString(),
          monthly_fee_usd_micros: s.monthlyFeeUsdMicros.toString(),
          included_usd_micros: s.includedUsdMicros.toString(),
          included_applied_usd_micros: s.includedAppliedUsdMicros.toString(),
          credits_applied_usd_micros: s.creditsAppliedUsdMicros.toString(),
          total_usd_micros: s.totalUsdMicros.toString(),
          billing_mode: s.billingMode,
          opening_balance_usd_micros: s.balance?.openingUsdMicros.toString() ?? null,
          credits_usd_micros: s.balance?.creditsUsdMicros.toString() ?? null,
          debits_usd_micros: s.balance?.debitsUsdMicros.toString() ?? null,
          closing_balance_usd_micros: s.balance?.closingUsdMicros.toString() ?? null,
        })),
      )
      .execute();
  }
  const lines = statements.flatMap(({ statement, lines }) =>
    lines.map((l) => ({
      statement_id: statement.id,
      line: l.line,
      origin_month: `${l.originMonth}-01`,
      late: l.late,
      pipeline: l.pipeline,
      model_id: l.modelId,
      unit: l.unit,
      events: l.events.toString(),
      quantity: l.quantity.toString(),
      fee_wei: l.feeWei.toString(),
      price_currency: l.priceCurrency,
      price_amount: l.priceAmount.toString(),
      price_per_units: l.pricePerUnits.toString(),
      charge_wei: l.chargeWei === null ? null : l.chargeWei.toString(),
      charge_usd_micros: l.chargeUsdMicros.toString(),
    })),
  );
  for (let i = 0; i < lines.length; i += CHUNK) {
    await trx
      .insertInto('statement_lines')
      .values(lines.slice(i, i + CHUNK))
      .execute();
  }
}

export async function insertClose(
  trx: Transaction<Database>,
  record: { month: string; cutoff: Date; statements: number },
) {
  await trx
    .insertInto('billing_closes')
    .values({ month: `${record.month}-01`, cutoff: record.cutoff, statements: record.statements })
    .execute();
}

type StatementRow = Selectable<StatementsTable>;

export function toStatement(r: StatementRow): Statement {
  return {
    id: r.id,
    accountId: r.account_id,
    month: month(r.month),
    planId: r.plan_id,
    closedAt: r.closed_at,
    rate: {
      answer: BigInt(r.eth_usd_answer),
      decimals: r.eth_usd_decimals,
      source: r.rate_source,
      updatedAt: r.rate_updated_at,
    },
    feeWei: BigInt(r.fee_wei),
    usageUsdMicros: BigInt(r.usage_usd_micros),
    monthlyFeeUsdMicros: BigInt(r.monthly_fee_usd_micros),
    includedUsdMicros: BigInt(r.included_usd_micros),
    includedAppliedUsdMicros: BigInt(r.included_applied_usd_micros),
    creditsAppliedUsdMicros: BigInt(r.credits_applied_usd_micros),
    totalUsdMicros: BigInt(r.total_usd_micros),
    billingMode: r.billing_mode,
    balance:
      r.opening_balance_usd_micros === null
        ? null
        : {
            openingUsdMicros: BigInt(r.opening_balance_usd_micros),
            creditsUsdMicros: BigInt(r.credits_usd_micros ?? '0'),
            debitsUsdMicros: BigInt(r.debits_usd_micros ?? '0'),
            closingUsdMicros: BigInt(r.closing_balance_usd_micros ?? '0'),
          },
  };
}

/**
 * Settles in `month` every ledger entry of `accountIds` not settled yet (one INSERT … SELECT
 * for all accounts). Entries a concurrent transaction has not committed are not visible here
 * and are settled by the next close: each entry lands in exactly one month.
 */
export async function settleLedgerEntries(
  trx: Transaction<Database>,
  accountIds: readonly string[],
  month: string,
): Promise<void> {
  if (accountIds.length === 0) return;
  await sql`
    insert into ledger_settlements (ledger_entry_id, account_id, month)
    select e.id, e.account_id, ${`${month}-01`}::date
      from ledger_entries e
     where e.account_id = any(${[...accountIds]}::text[])
       and not exists (select 1 from ledger_settlements s where s.ledger_entry_id = e.id)
    on conflict (ledger_entry_id) do nothing`.execute(trx);
}

/** Per account: what earlier months settled (opening), and this month's credits and debits. */
export async function findSettledBalances(
  db: Db,
  accountIds: readonly string[],
  month: string,
): Promise<Map<string, Omit<StatementBalance, 'closingUsdMicros'>>> {
  if (accountIds.length === 0) return new Map();
  const first = `${month}-01`;
  const rows = await sql<{ account_id: string; opening: string; credits: string; debits: string }>`
    select s.account_id,
           coalesce(sum(e.amount_usd_micros) filter (where s.month < ${first}::date), 0)::text as opening,
           coalesce(sum(e.amount_usd_micros) filter (where s.month = ${first}::date and e.amount_usd_micros > 0), 0)::text as credits,
           coalesce(sum(e.amount_usd_micros) filter (where s.month = ${first}::date and e.amount_usd_micros < 0), 0)::text as debits
      from ledger_settlements s
      join ledger_entries e on e.id = s.ledger_entry_id
     where s.account_id = any(${[...accountIds]}::text[])
       and s.month <= ${first}::date
     group by s.account_id`.execute(db);
  return new Map(
    rows.rows.map((r) => [
      r.account_id,
      {
        openingUsdMicros: BigInt(r.opening),
        creditsUsdMicros: BigInt(r.credits),
        debitsUsdMicros: BigInt(r.debits),
      },
    ]),
  );
}

/** The ledger entries a statement settled (its month's), oldest first. */
export async function findSettledEntries(
  db: Db,
  accountId: string,
  month: string,
): Promise<LedgerEntry[]> {
  const rows = await db
    .selectFrom('ledger_settlements as s')
    .innerJoin('ledger_entries as e', 'e.id', 's.ledger_entry_id')
    .selectAll('e')
    .where('s.account_id', '=', accountId)
    .where('s.month', '=', `${month}-01` as unknown as Date)
    .orderBy('e.id')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    accountId: r.account_id,
    kind: r.kind,
    amountUsdMicros: BigInt(r.amount_usd_micros),
    reference: r.reference,
    memo: r.memo,
    createdAt: r.created_at,
  }));
}

export async function findStatementById(db: Db, id: string): Promise<Statement | null> {
  const row = await db.selectFrom('statements').selectAll().where('id', '=', id).executeTakeFirst();
  return row === undefined ? null : toStatement(row);
}

export async function listStatements(
  db: Db,
  filter: { accountId?: string; month?: string; after?: string },
  limit: number,
): Promise<Statement[]> {
  let query = db.selectFrom('statements').selectAll();
  if (filter.accountId !== undefined) query = query.where('account_id', '=', filter.accountId);
  if (filter.month !== undefined)
    query = query.where('month', '=', `${filter.month}-01` as unknown as Date);
  if (filter.after !== undefined) query = query.where('id', '>', filter.after);
  const rows = await query.orderBy('id').limit(limit).execute();
  return rows.map(toStatement);
}

export async function findStatementLines(db: Db, statementId: string): Promise<StatementLine[]> {
  const rows = await db
    .selectFrom('statement_lines')
    .selectAll()
    .where('statement_id', '=', statementId)
    .orderBy('line')
    .execute();
  return rows.map(toLine);
}

type LineRow = Selectable<StatementLinesTable>;

export function toLine(r: LineRow): StatementLine {
  return {
    line: r.line,
    originMonth: month(r.origin_month),
    late: r.late,
    pipeline: r.pipeline,
    modelId: r.model_id,
    unit: r.unit,
    events: BigInt(r.events),
    quantity: BigInt(r.quantity),
    feeWei: BigInt(r.fee_wei),
    priceCurrency: r.price_currency,
    priceAmount: BigInt(r.price_amount),
    pricePerUnits: BigInt(r.price_per_units),
    chargeWei: r.charge_wei === null ? null : BigInt(r.charge_wei),
    chargeUsdMicros: BigInt(r.charge_usd_micros),
  };
}

/** A page of a month's lines with their statement's account, keyset-ordered. */
export async function pageMonthLines(
  db: Db,
  forMonth: string,
  after: { statementId: string; line: number } | null,
  limit: number,
) {
  let query = db
    .selectFrom('statement_lines as l')
    .innerJoin('statements as s', 's.id', 'l.statement_id')
    .selectAll('l')
    .select(['s.account_id', 's.month'])
    .where('s.month', '=', `${forMonth}-01` as unknown as Date);
  if (after !== null) {
    query = query.where((eb) =>
      eb.or([
        eb('l.statement_id', '>', after.statementId),
        eb.and([eb('l.statement_id', '=', after.statementId), eb('l.line', '>', after.line)]),
      ]),
    );
  }
  const rows = await query.orderBy('l.statement_id').orderBy('l.line').limit(limit).execute();
  return rows.map((r) => ({ accountId: r.account_id, statementId: r.statement_id, ...toLine(r) }));
}

// ---- Stripe ------------------------------------------------------------------------------

export async function insertSyncRows(
  trx: Transaction<Database>,
  rows: ReadonlyArray<{ statementId: string; state: SyncState }>,
) {
  for (let i = 0; i < rows.length; i += CHUNK) {
    await trx
      .insertInto('stripe_sync')
      .values(
        rows.slice(i, i + CHUNK).map((r) => ({ statement_id: r.statementId, state: r.state })),
      )
      .execute();
  }
}

export async function findDueSyncs(db: Db, now: Date, limit: number) {
  return db
    .selectFrom('stripe_sync')
    .selectAll()
    .where('state', '=', 'pending')
    .where('next_attempt_at', '<=', now)
    .orderBy('next_attempt_at')
    .limit(limit)
    .execute();
}

export async function findSync(db: Db, statementId: string) {
  return db
    .selectFrom('stripe_sync')
    .selectAll()
    .where('statement_id', '=', statementId)
    .executeTakeFirst();
}

export async function updateSync(
  db: Db,
  statementId: string,
  patch: {
    state?: SyncState;
    invoice_id?: string | null;
    items_pushed?: number;
    attempts?: number;
    next_attempt_at?: Date;
    last_error?: string | null;
  },
) {
  await db
    .updateTable('stripe_sync')
    .set({ ...patch, updated_at: new Date() })
    .where('statement_id', '=', statementId)
    .execute();
}

export async function findCustomerId(db: Db, accountId: string): Promise<string | null> {
  const row = await db
    .selectFrom('stripe_customers')
    .select('customer_id')
    .where('account_id', '=', accountId)
    .executeTakeFirst();
  return row?.customer_id ?? null;
}

export async function insertCustomer(db: Db, accountId: string, customerId: string) {
  await db
    .insertInto('stripe_customers')
    .values({ account_id: accountId, customer_id: customerId })
    .onConflict((oc) => oc.column('account_id').doNothing())
    .execute();
}

/** Records a webhook event id; false when it was seen before (a redelivery). */
export async function insertStripeEvent(db: Db, id: string, type: string): Promise<boolean> {
  const row = await db
    .insertInto('stripe_events')
    .values({ id, type })
    .onConflict((oc) => oc.column('id').doNothing())
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

export async function updateSyncByInvoice(db: Db, invoiceId: string, state: SyncState) {
  const result = await db
    .updateTable('stripe_sync')
    .set({ state, updated_at: new Date() })
    .where('invoice_id', '=', invoiceId)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

// ---- Stripe sync status (GET /v1/billing/stripe-sync) -------------------------------------

/**
 * What an operator reads a sync row as: `failed` is a pending row whose last attempt failed
 * (it is retried with backoff); `synced` is any state Stripe has the invoice in.
 */
export type SyncStatus = 'pending' | 'failed' | 'synced' | 'skipped';

export const SYNCED_STATES: readonly SyncState[] = [
  'invoiced',
  'finalized',
  'paid',
  'payment_failed',
];

export interface SyncStatusRow {
  statementId: string;
  accountId: string;
  month: string;
  totalUsdMicros: bigint;
  state: SyncState;
  status: SyncStatus;
  invoiceId: string | null;
  customerId: string | null;
  itemsPushed: number;
  attempts: number;
  nextAttemptAt: Date;
  lastError: string | null;
  updatedAt: Date;
}

export function syncStatusOf(state: SyncState, lastError: string | null): SyncStatus {
  if (state === 'skipped') return 'skipped';
  if (state === 'pending') return lastError === null ? 'pending' : 'failed';
  return 'synced';
}

export async function findRecentCloses(db: Db, limit: number): Promise<CloseRecord[]> {
  const rows = await db
    .selectFrom('billing_closes')
    .selectAll()
    .orderBy('month', 'desc')
    .limit(limit)
    .execute();
  return rows.map(toClose);
}

/** Sync rows per month and state, split by whether the last attempt failed. */
export async function countSyncsByMonth(db: Db, months: readonly string[]) {
  if (months.length === 0) return [];
  const rows = await db
    .selectFrom('stripe_sync as ss')
    .innerJoin('statements as s', 's.id', 'ss.statement_id')
    .select(['s.month', 'ss.state'])
    .select(sql<boolean>`ss.last_error is not null`.as('has_error'))
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where(
      's.month',
      'in',
      months.map((m) => `${m}-01` as unknown as Date),
    )
    .groupBy(['s.month', 'ss.state', sql`ss.last_error is not null`])
    .execute();
  return rows.map((r) => ({
    month: month(r.month),
    state: r.state,
    status: syncStatusOf(r.state, r.has_error ? 'error' : null),
    count: Number(r.n),
  }));
}

/**
 * A page of sync rows of `months`, newest month first and by statement id within a month.
 * The cursor is the last statement id of the previous page; null when it names no sync row.
 */
export async function pageSyncStatus(
  db: Db,
  filter: { months: readonly string[]; status?: SyncStatus },
  after: string | null,
  limit: number,
): Promise<SyncStatusRow[] | null> {
  let cursorMonth: string | null = null;
  if (after !== null) {
    const row = await db
      .selectFrom('stripe_sync as ss')
      .innerJoin('statements as s', 's.id', 'ss.statement_id')
      .select('s.month')
      .where('ss.statement_id', '=', after)
      .executeTakeFirst();
    if (row === undefined) return null;
    // As a literal, like every month filter here: a Date would be sent in the session's zone.
    cursorMonth = `${month(row.month)}-01`;
  }
  if (filter.months.length === 0) return [];
  let query = db
    .selectFrom('stripe_sync as ss')
    .innerJoin('statements as s', 's.id', 'ss.statement_id')
    .leftJoin('stripe_customers as c', 'c.account_id', 's.account_id')
    .selectAll('ss')
    .select(['s.account_id', 's.month', 's.total_usd_micros', 'c.customer_id'])
    .where(
      's.month',
      'in',
      filter.months.map((m) => `${m}-01` as unknown as Date),
    );
  switch (filter.status) {
    case 'skipped':
      query = query.where('ss.state', '=', 'skipped');
      break;
    case 'synced':
      query = query.where('ss.state', 'in', [...SYNCED_STATES]);
      break;
    case 'pending':
      query = query.where('ss.state', '=', 'pending').where('ss.last_error', 'is', null);
      break;
    case 'failed':
      query = query.where('ss.state', '=', 'pending').where('ss.last_error', 'is not', null);
      break;
    case undefined:
      break;
  }
  if (after !== null && cursorMonth !== null) {
    const m = cursorMonth as unknown as Date;
    query = query.where((eb) =>
      eb.or([
        eb('s.month', '<', m),
        eb.and([eb('s.month', '=', m), eb('ss.statement_id', '>', after)]),
      ]),
    );
  }
  const rows = await query
    .orderBy('s.month', 'desc')
    .orderBy('ss.statement_id')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    statementId: r.statement_id,
    accountId: r.account_id,
    month: month(r.month),
    totalUsdMicros: BigInt(r.total_usd_micros),
    state: r.state,
    status: syncStatusOf(r.state, r.last_error),
    invoiceId: r.invoice_id,
    customerId: r.customer_id,
    itemsPushed: r.items_pushed,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    lastError: r.last_error,
    updatedAt: r.updated_at,
  }));
}

/** Statements whose Stripe sync is failing (pending with an error), for the metrics scrape. */
export async function countFailingSyncs(db: Db): Promise<number> {
  const row = await db
    .selectFrom('stripe_sync')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('state', '=', 'pending')
    .where('last_error', 'is not', null)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** The accounts that have a statement for `month` (`YYYY-MM`), closed or being closed. */
export async function findStatementAccounts(
  db: Kysely<Database>,
  month: string,
): Promise<Set<string>> {
  const rows = await db
    .selectFrom('statements')
    .select('account_id')
    .where('month', '=', `${month}-01` as unknown as Date)
    .execute();
  return new Set(rows.map((r) => r.account_id));
}
