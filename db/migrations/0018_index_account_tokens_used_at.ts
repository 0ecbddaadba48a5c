// Used account tokens are swept some days after their use (issue #18): the sweep's DELETE
// finds them by used_at (expired ones by the expires_at index of 0012). Partial, because most
// rows of a busy table are the unused links still waiting in mailboxes. Frozen in time:
// imports nothing from the app.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index account_tokens_used_idx on account_tokens (used_at)
    where used_at is not null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index account_tokens_used_idx`.execute(db);
}
