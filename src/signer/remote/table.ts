// Kysely table of the remote-signer protocol (db/migrations/0055_create_signer_sessions.ts).
import type { ColumnType, Generated } from 'kysely';

export interface SignerSessionsTable {
  state_id: string;
  account_id: string;
  /** int8: both drivers return a bigint; written as a bigint. */
  last_seq: ColumnType<bigint, bigint, bigint>;
  /** sha256(State ‖ Sig) of the last state handed out, hex. */
  last_state_digest: string;
  manifest_id: string;
  orchestrator_address: string;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}
