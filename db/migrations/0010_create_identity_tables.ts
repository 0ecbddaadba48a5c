// Frozen in time: migrations import nothing from the app.
// Identity: OIDC apps (clients), their end users, oidc-provider's persisted models and the
// OIDC signing keys.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('apps')
    .addColumn('id', 'text', (col) => col.primaryKey()) // app_…
    .addColumn('client_id', 'text', (col) => col.notNull().unique())
    .addColumn('owner_account_id', 'text', (col) => col.notNull().references('accounts.id'))
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('kind', 'text', (col) =>
      col.notNull().check(sql`kind in ('public', 'web', 'machine')`),
    )
    .addColumn('redirect_uris', 'jsonb', (col) => col.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('post_logout_redirect_uris', 'jsonb', (col) =>
      col.notNull().defaultTo(sql`'[]'::jsonb`),
    )
    .addColumn('allowed_origins', 'jsonb', (col) => col.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('grant_types', 'jsonb', (col) => col.notNull())
    .addColumn('scopes', 'jsonb', (col) => col.notNull())
    .addColumn('status', 'text', (col) =>
      col
        .notNull()
        .defaultTo('active')
        .check(sql`status in ('active', 'disabled')`),
    )
    // HMAC-SHA256 (TOLLHOUSE_SECRET subkey) of the client secret; null for public clients.
    .addColumn('secret_hash', 'text')
    // The secret replaced by the last rotation stays valid until previous_secret_expires_at.
    .addColumn('previous_secret_hash', 'text')
    .addColumn('previous_secret_expires_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('apps_owner_idx').on('apps').column('owner_account_id').execute();

  await db.schema
    .createTable('app_users')
    .addColumn('id', 'text', (col) => col.primaryKey()) // usr_…
    .addColumn('app_id', 'text', (col) => col.notNull().references('apps.id').onDelete('cascade'))
    .addColumn('external_id', 'text', (col) => col.notNull())
    .addColumn('status', 'text', (col) =>
      col
        .notNull()
        .defaultTo('active')
        .check(sql`status in ('active', 'disabled')`),
    )
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('app_users_app_external_key', ['app_id', 'external_id'])
    .execute();

  await db.schema
    .createTable('oidc_payloads')
    // oidc-provider model name (Session, Grant, AuthorizationCode, RefreshToken, …).
    .addColumn('model', 'text', (col) => col.notNull())
    // The model's id; for bearer-like models (codes, tokens) an HMAC of it.
    .addColumn('id', 'text', (col) => col.notNull())
    .addColumn('payload', 'jsonb', (col) => col.notNull())
    .addColumn('grant_id', 'text')
    .addColumn('user_code', 'text')
    .addColumn('uid', 'text')
    .addColumn('expires_at', 'timestamptz')
    .addColumn('consumed_at', 'timestamptz')
    .addPrimaryKeyConstraint('oidc_payloads_pkey', ['model', 'id'])
    .execute();
  await db.schema
    .createIndex('oidc_payloads_grant_idx')
    .on('oidc_payloads')
    .column('grant_id')
    .where(sql.ref('grant_id'), 'is not', null)
    .execute();
  await db.schema
    .createIndex('oidc_payloads_user_code_idx')
    .on('oidc_payloads')
    .columns(['model', 'user_code'])
    .where(sql.ref('user_code'), 'is not', null)
    .execute();
  await db.schema
    .createIndex('oidc_payloads_uid_idx')
    .on('oidc_payloads')
    .columns(['model', 'uid'])
    .where(sql.ref('uid'), 'is not', null)
    .execute();
  await db.schema
    .createIndex('oidc_payloads_expires_idx')
    .on('oidc_payloads')
    .column('expires_at')
    .execute();

  await db.schema
    .createTable('signing_keys')
    .addColumn('kid', 'text', (col) => col.primaryKey())
    .addColumn('alg', 'text', (col) => col.notNull())
    // The public JWK, served in the JWKS.
    .addColumn('public_jwk', 'jsonb', (col) => col.notNull())
    // The private JWK, AES-256-GCM sealed under a TOLLHOUSE_SECRET subkey (kid as context).
    .addColumn('private_jwk_sealed', 'text', (col) => col.notNull())
    // next: published, not signing yet; active: signs; retired: published until retire_after.
    .addColumn('status', 'text', (col) =>
      col.notNull().check(sql`status in ('next', 'active', 'retired')`),
    )
    .addColumn('retire_after', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  // At most one signing key at a time, even when two replicas start together.
  await sql`create unique index signing_keys_one_active_idx on signing_keys (status) where status = 'active'`.execute(
    db,
  );
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('signing_keys').execute();
  await db.schema.dropTable('oidc_payloads').execute();
  await db.schema.dropTable('app_users').execute();
  await db.schema.dropTable('apps').execute();
}
