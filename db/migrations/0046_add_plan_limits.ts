// Front-door limits per plan (issue #20): `{"key": {…}, "account": {…}, "anonymous": {…}}`,
// each `{"rate", "burst", "concurrency"}` with null or absent meaning "the setting's default".
// jsonb rather than nine columns: the app validates the shape at the boundary and the front
// door reads it whole. Frozen in time: imports nothing from the app.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table plans add column limits jsonb not null default '{}'::jsonb`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table plans drop column limits`.execute(db);
}
