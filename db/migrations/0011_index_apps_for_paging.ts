// GET /v1/apps pages apps oldest first with `id` as the tie-breaker, one account's or (for an
// operator) every account's; these indexes serve that order and the (created_at, id) keyset
// condition. The first supersedes apps_owner_idx (owner_account_id), its prefix. Frozen in time.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index apps_owner_page_idx on apps (owner_account_id, created_at, id)`.execute(
    db,
  );
  await sql`create index apps_page_idx on apps (created_at, id)`.execute(db);
  await sql`drop index apps_owner_idx`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`create index apps_owner_idx on apps (owner_account_id)`.execute(db);
  await sql`drop index apps_page_idx`.execute(db);
  await sql`drop index apps_owner_page_idx`.execute(db);
}
