// The console's server-side sessions: the browser holds only a random id (cookie); the OIDC
// access token the console calls /v1 with stays here, sealed. Frozen in time: imports nothing.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('console_sessions')
    // HMAC-SHA256 (TOLLHOUSE_SECRET subkey) of the cookie value: a database leak is not a login.
    .addColumn('id_hash', 'text', (col) => col.primaryKey())
    .addColumn('account_id', 'text', (col) =>
      col.notNull().references('accounts.id').onDelete('cascade'),
    )
    .addColumn('email', 'text', (col) => col.notNull())
    // Space-separated API scopes the access token carries (decides which pages are shown).
    .addColumn('scopes', 'text', (col) => col.notNull())
    // AES-GCM sealed (TOLLHOUSE_SECRET subkey) access token and, when issued, refresh token.
    .addColumn('access_token_sealed', 'text', (col) => col.notNull())
    .addColumn('refresh_token_sealed', 'text')
    // Per-session CSRF token, echoed by every console form.
    .addColumn('csrf_token', 'text', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    // When the access token expires; the session ends with it (sign-in again is silent while
    // the OpenID provider's own session lasts).
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    .execute();
  await db.schema
    .createIndex('console_sessions_expires_idx')
    .on('console_sessions')
    .column('expires_at')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('console_sessions').execute();
}
