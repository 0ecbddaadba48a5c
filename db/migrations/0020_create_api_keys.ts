// Frozen in time: migrations import nothing from the app.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'text', (col) => col.primaryKey()) // key_…
    .addColumn('account_id', 'text', (col) =>
      col.notNull().references('accounts.id').onDelete('cascade'),
    )
    // app_…: the apps table is created by identity's block (0010–0019); the foreign key is
    // added by a later migration once both have landed.
    .addColumn('app_id', 'text')
    .addColumn('kind', 'text', (col) => col.notNull().check(sql`kind in ('backend', 'browser')`))
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('scopes', 'jsonb', (col) => col.notNull())
    // Browser keys only (required for them); null means unrestricted.
    .addColumn('allowed_origins', 'jsonb')
    .addColumn('allowed_resources', 'jsonb')
    // HMAC-SHA256 (hex) of the whole key under the `api-keys` subkey of TOLLHOUSE_SECRET.
    .addColumn('key_hash', 'text', (col) => col.notNull().unique())
    .addColumn('display_prefix', 'text', (col) => col.notNull())
    .addColumn('expires_at', 'timestamptz')
    .addColumn('last_used_at', 'timestamptz')
    .addColumn('revoked_at', 'timestamptz')
    // Set on the old key by a rotation: the key that replaces it.
    .addColumn('replaced_by', 'text')
    .addColumn('created_by', 'text', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addCheckConstraint(
      'api_keys_browser_restricted',
      sql`kind = 'backend' or (allowed_origins is not null and allowed_resources is not null)`,
    )
    .execute();
  await db.schema
    .createIndex('api_keys_account_idx')
    .on('api_keys')
    .columns(['account_id', 'created_at'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('api_keys').execute();
}
