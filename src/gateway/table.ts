import type { ColumnType, Insertable, Selectable } from 'kysely';

export interface StreamsTable {
  id: string;
  account_id: string;
  app_id: string | null;
  key_id: string | null;
  client_id: string | null;
  end_user_id: string | null;
  name: string;
  stream_key_hash: ColumnType<string, string, never>;
  created_at: ColumnType<Date, never, never>;
  revoked_at: ColumnType<Date | null, never, Date>;
}

export type StreamRow = Selectable<StreamsTable>;
export type NewStreamRow = Insertable<StreamsTable>;

/** Serving replicas' heartbeats (replicas.ts), for cluster-wide limits. */
export interface ReplicasTable {
  id: string;
  started_at: ColumnType<Date, never, never>;
  seen_at: ColumnType<Date, never, Date>;
}
