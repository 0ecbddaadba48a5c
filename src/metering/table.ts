import type { ColumnType, Generated } from 'kysely';

/** Numeric(78,0): written as a decimal string, read back as one. */
type Numeric = ColumnType<string, string, string>;
/** text not null default '': inserting may leave it out. */
type TextWithDefault = ColumnType<string, string | undefined, string>;

export interface UsageEventsTable {
  id: Generated<bigint>;
  source: string;
  event_id: string;
  occurred_at: Date;
  /** First day of the UTC month of occurred_at; the partition key. */
  occurred_month: ColumnType<Date, string, never>;
  recorded_at: ColumnType<Date, never, never>;
  account_id: string;
  app_id: string | null;
  key_id: string | null;
  client_id: string | null;
  end_user_id: string | null;
  pipeline: string;
  model_id: string | null;
  unit: string;
  quantity: Numeric;
  fee_wei: Numeric;
  status: number | null;
  latency_ms: number | null;
  attributes: ColumnType<Record<string, unknown>, string | undefined, never>;
}

export interface UsageRollupsTable {
  hour: Date;
  account_id: string;
  /** '' when absent (the schema's default), so the primary key covers every row. */
  app_id: TextWithDefault;
  end_user_id: TextWithDefault;
  pipeline: string;
  model_id: TextWithDefault;
  unit: string;
  events: bigint;
  failed_events: bigint;
  quantity: Numeric;
  fee_wei: Numeric;
}
