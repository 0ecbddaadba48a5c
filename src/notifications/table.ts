import type { ColumnType, Selectable } from 'kysely';

export interface OutboundEventsTable {
  id: string;
  // bigint identity: pg returns it as a string.
  seq: ColumnType<string, never, never>;
  type: string;
  account_id: string | null;
  key: string;
  data: ColumnType<Record<string, unknown>, string, never>;
  occurred_at: Date;
}

export type OutboundEventRow = Selectable<OutboundEventsTable>;
