// Kysely table of the remote-signer protocol (db/migrations/0055_create_signer_sessions.ts).
import type { ColumnType, Generated } from 'kysely';

export interface SignerSessionsTable {
  state_id: string;
  account_id: string;
  /** int8: both drivers return a bigint; written as a bigint. */
  last_seq: ColumnType<bigint, bigint, bigint>;
  manifest_id: string;
  orchestrator_address: string;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}
