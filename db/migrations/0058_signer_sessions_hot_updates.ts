// Frozen in time: migrations import nothing from the app.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

// Every payment claims its session with an UPDATE of last_seq, last_state_digest and
// updated_at (src/signer/remote/queries.ts claimSessions). With updated_at in an index that
// UPDATE could never be a heap-only (HOT) update: each payment wrote a new entry into both
// indexes. The account index now holds account_id alone (what finding an account's sessions
// needs; nothing orders by updated_at), and pages keep room for the new row versions
// (fillfactor 70), so a claim touches only the heap page (BENCHMARKS.md, signer).
export async function up(db: Kysely<any>): Promise<void> {
  await sql`drop index signer_sessions_account_idx`.execute(db);
  await sql`create index signer_sessions_account_idx on signer_sessions (account_id)`.execute(db);
  await sql`alter table signer_sessions set (fillfactor = 70)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table signer_sessions reset (fillfactor)`.execute(db);
  await sql`drop index signer_sessions_account_idx`.execute(db);
  await sql`create index signer_sessions_account_idx on signer_sessions (account_id, updated_at)`.execute(
    db,
  );
}
