// Live video streams and their stream keys (gateway). Frozen in time: imports nothing.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('streams')
    .addColumn('id', 'text', (col) => col.primaryKey()) // str_…
    .addColumn('account_id', 'text', (col) =>
      col.notNull().references('accounts.id').onDelete('cascade'),
    )
    // The principal that created the stream; go-livepeer's webhooks attribute the stream to it.
    .addColumn('app_id', 'text')
    .addColumn('key_id', 'text')
    .addColumn('client_id', 'text')
    .addColumn('end_user_id', 'text')
    .addColumn('name', 'text', (col) => col.notNull())
    // HMAC-SHA256 (hex) of the stream key under the `stream-keys` subkey of TOLLHOUSE_SECRET.
    .addColumn('stream_key_hash', 'text', (col) => col.notNull().unique())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('revoked_at', 'timestamptz')
    .execute();
  await db.schema
    .createIndex('streams_account_idx')
    .on('streams')
    .columns(['account_id', 'created_at'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('streams').execute();
}
