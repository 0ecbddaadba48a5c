// Which alert e-mails an account does not want (issue #19): one row per account and event
// type it opted out of; no row, the e-mail is sent (alerts are on by default, as in Lago and
// Stripe). Webhooks are not affected: an endpoint chooses its event types itself. Frozen in
// time: imports nothing from the app.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table alert_email_opt_outs (
      account_id text not null references accounts (id) on delete cascade,
      event_type text not null check (length(event_type) between 1 and 100),
      created_at timestamptz not null,
      primary key (account_id, event_type)
    )`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table alert_email_opt_outs`.execute(db);
}
