// The outbox of outbound events (issue #19): a capability that changes state inserts the event
// in the same transaction, and the notifications capability delivers it later (webhooks,
// e-mail). `key` names the crossing an event reports, so the same crossing seen by many
// requests or replicas is stored once. `seq` orders delivery. Frozen in time: imports nothing
// from the app.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('outbound_events')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('seq', 'bigint', (col) => col.generatedAlwaysAsIdentity().notNull().unique())
    .addColumn('type', 'text', (col) => col.notNull())
    // Null for deployment-wide events (operators' endpoints). No foreign key: an account's
    // events outlive the account's deletion, like its statements.
    .addColumn('account_id', 'text')
    .addColumn('key', 'text', (col) => col.notNull().unique())
    .addColumn('data', 'jsonb', (col) => col.notNull())
    .addColumn('occurred_at', 'timestamptz', (col) => col.notNull())
    .execute();
  await db.schema
    .createIndex('outbound_events_account_idx')
    .on('outbound_events')
    .columns(['account_id', 'seq'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('outbound_events').execute();
}
