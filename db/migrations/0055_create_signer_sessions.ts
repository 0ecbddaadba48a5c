// Frozen in time: migrations import nothing from the app.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

// Remote-signer sessions: StateID → the last SequenceNumber signed, so a state handed back
// twice (replayed) or by another account is refused. go-livepeer's own signer keeps no such
// record. One row per payment session; the row is claimed with a conditional UPDATE.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('signer_sessions')
    .addColumn('state_id', 'text', (col) => col.primaryKey())
    .addColumn('account_id', 'text', (col) => col.notNull())
    .addColumn('last_seq', 'int8', (col) => col.notNull())
    // sha256(State ‖ Sig) of the last state handed out: a state presented back that matches it
    // is ours and current without recovering its signature (5.8 ms of pure-JS secp256k1 here).
    .addColumn('last_state_digest', 'text', (col) => col.notNull())
    .addColumn('manifest_id', 'text', (col) => col.notNull())
    .addColumn('orchestrator_address', 'text', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`create index signer_sessions_account_idx on signer_sessions (account_id, updated_at)`.execute(
    db,
  );
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('signer_sessions').execute();
}
