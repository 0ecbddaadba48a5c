// Webhook endpoints and their deliveries (issue #19). An endpoint belongs to an account, or to
// the deployment (account_id null: operators' endpoints). Each event of the outbox is fanned out
// once (outbound_events.fanned_out_at) into one delivery row per matching endpoint; a delivery is
// sent by whichever replica holds its lease, and an endpoint's deliveries go out one at a time in
// `seq` order. Frozen in time: imports nothing from the app.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('outbound_events').addColumn('fanned_out_at', 'timestamptz').execute();
  // The fan-out reads only what is not yet fanned out: a small partial index however long the
  // history grows.
  await sql`create index outbound_events_unfanned_idx on outbound_events (seq)
    where fanned_out_at is null`.execute(db);

  await db.schema
    .createTable('webhook_endpoints')
    .addColumn('id', 'text', (col) => col.primaryKey())
    // Null: a deployment endpoint (operators). No foreign key, as for outbound_events: the
    // account's deletion is identity's business; its endpoints are removed with it by id.
    .addColumn('account_id', 'text')
    // A deployment endpoint that also hears every account's events.
    .addColumn('all_accounts', 'boolean', (col) => col.notNull().defaultTo(false))
    .addColumn('url', 'text', (col) => col.notNull())
    .addColumn('description', 'text', (col) => col.notNull().defaultTo(''))
    // JSON array of event types; empty: every type.
    .addColumn('event_types', 'jsonb', (col) => col.notNull())
    // whsec_… sealed with the deployment secret (platform/secrets.ts), bound to the endpoint id.
    .addColumn('secret_sealed', 'text', (col) => col.notNull())
    // After a rotation the old secret also signs until it expires, so receivers can switch.
    .addColumn('previous_secret_sealed', 'text')
    .addColumn('previous_secret_expires_at', 'timestamptz')
    .addColumn('enabled', 'boolean', (col) => col.notNull())
    .addColumn('disabled_reason', 'text')
    .addColumn('consecutive_failures', 'integer', (col) => col.notNull().defaultTo(0))
    // First failure since the last success; null while healthy.
    .addColumn('failing_since', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull())
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull())
    .execute();
  await db.schema
    .createIndex('webhook_endpoints_account_idx')
    .on('webhook_endpoints')
    .columns(['account_id', 'created_at'])
    .execute();

  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('seq', 'bigint', (col) => col.generatedAlwaysAsIdentity().notNull().unique())
    .addColumn('endpoint_id', 'text', (col) =>
      col.notNull().references('webhook_endpoints.id').onDelete('cascade'),
    )
    .addColumn('event_id', 'text', (col) => col.notNull().references('outbound_events.id'))
    // pending → succeeded | failed (retries used up)
    .addColumn('status', 'text', (col) =>
      col.notNull().check(sql`status in ('pending', 'succeeded', 'failed')`),
    )
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz', (col) => col.notNull())
    // A replica sending this delivery holds it until then; a replica killed mid-send lets the
    // lease run out and another one sends it again (receivers dedupe on webhook-id).
    .addColumn('lease_until', 'timestamptz')
    .addColumn('last_attempt_at', 'timestamptz')
    .addColumn('response_status', 'integer')
    .addColumn('latency_ms', 'integer')
    .addColumn('error', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull())
    .execute();
  // The head of each endpoint's queue, and the delivery log newest first.
  await sql`create index webhook_deliveries_pending_idx on webhook_deliveries (endpoint_id, seq)
    where status = 'pending'`.execute(db);
  await db.schema
    .createIndex('webhook_deliveries_endpoint_idx')
    .on('webhook_deliveries')
    .columns(['endpoint_id', 'seq'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('webhook_deliveries').execute();
  await db.schema.dropTable('webhook_endpoints').execute();
  await db.schema.alterTable('outbound_events').dropColumn('fanned_out_at').execute();
}
