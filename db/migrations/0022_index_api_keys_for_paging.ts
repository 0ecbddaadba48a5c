// GET /v1/keys pages an account's keys newest first with `id` as the tie-breaker; this index
// serves that order and the (created_at, id) keyset condition, scanned backwards. It
// supersedes api_keys_account_idx (account_id, created_at), its prefix. Frozen in time.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index api_keys_account_page_idx on api_keys (account_id, created_at, id)`.execute(
    db,
  );
  await sql`drop index api_keys_account_idx`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`create index api_keys_account_idx on api_keys (account_id, created_at)`.execute(db);
  await sql`drop index api_keys_account_page_idx`.execute(db);
}
