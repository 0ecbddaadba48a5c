// Serving replicas' heartbeats (issue #20): each `tollhouse serve` upserts its row every few
// seconds, and counts the rows seen recently to take its share of cluster-wide limits. Times
// are PostgreSQL's (`now()`), so replicas' clocks need not agree. Frozen in time.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('replicas')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('started_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('seen_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('replicas').execute();
}
