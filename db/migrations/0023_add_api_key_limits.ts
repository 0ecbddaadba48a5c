// A per-key override of the front-door limits (issue #20), set by an operator:
// `{"rate", "burst", "concurrency"}`, null or absent meaning "the plan's, else the setting's".
// Frozen in time: imports nothing from the app.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table api_keys add column limits jsonb not null default '{}'::jsonb`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table api_keys drop column limits`.execute(db);
}
