// Account self-service (issue #18 item 7): a change of e-mail address is confirmed by a link
// sent to the new address, a single-use token like the others in account_tokens, so the
// purpose check admits one more value. Frozen in time: imports nothing from the app.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // PostgreSQL named the inline check of 0012 `<table>_<column>_check`.
  await sql`alter table account_tokens drop constraint account_tokens_purpose_check`.execute(db);
  await sql`alter table account_tokens add constraint account_tokens_purpose_check
    check (purpose in ('verify_email', 'reset_password', 'invitation', 'change_email'))`.execute(
    db,
  );
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`delete from account_tokens where purpose = 'change_email'`.execute(db);
  await sql`alter table account_tokens drop constraint account_tokens_purpose_check`.execute(db);
  await sql`alter table account_tokens add constraint account_tokens_purpose_check
    check (purpose in ('verify_email', 'reset_password', 'invitation'))`.execute(db);
}
