// Sign in with an upstream OpenID provider (issue #18 item 3). `account_identities` links an
// account to a subject at a provider the operator configured; `upstream_flows` holds each
// sign-in or link started towards a provider until its callback comes back, so a callback is
// used once, by the browser that started it, within ten minutes. Frozen in time: imports
// nothing from the app.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('account_identities')
    // `idn_…`: what the holder names a link by (a subject may hold any character).
    .addColumn('id', 'text', (col) => col.primaryKey())
    // The provider's id in UPSTREAM_OIDC_PROVIDERS: renaming it there orphans its links, so
    // the docs say to keep it.
    .addColumn('provider', 'text', (col) => col.notNull())
    // The upstream `sub`: stable and unique per issuer (OIDC Core §2), unlike the e-mail.
    .addColumn('subject', 'text', (col) => col.notNull())
    .addColumn('account_id', 'text', (col) =>
      col.notNull().references('accounts.id').onDelete('cascade'),
    )
    // The address the provider reported at the last sign-in, shown to the holder.
    .addColumn('email', 'text')
    .addColumn('linked_at', 'timestamptz', (col) => col.notNull())
    .addColumn('last_used_at', 'timestamptz')
    .addUniqueConstraint('account_identities_provider_subject_key', ['provider', 'subject'])
    .execute();
  await db.schema
    .createIndex('account_identities_account_idx')
    .on('account_identities')
    .column('account_id')
    .execute();

  await db.schema
    .createTable('upstream_flows')
    // HMAC-SHA256 (TOLLHOUSE_SECRET subkey) of the OAuth `state`, which also sits in the
    // starting browser's cookie.
    .addColumn('state_hash', 'text', (col) => col.primaryKey())
    .addColumn('provider', 'text', (col) => col.notNull())
    .addColumn('purpose', 'text', (col) => col.notNull().check(sql`purpose in ('login', 'link')`))
    // login: the oidc-provider interaction the sign-in finishes.
    .addColumn('interaction_uid', 'text')
    // link: the account the identity is linked to.
    .addColumn('account_id', 'text', (col) => col.references('accounts.id').onDelete('cascade'))
    // PKCE verifier and ID token nonce: worthless without the code, which only the callback
    // carries, and the client secret.
    .addColumn('code_verifier', 'text', (col) => col.notNull())
    .addColumn('nonce', 'text', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull())
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    // A link flow is started by an API call and bound to a browser when that browser opens
    // its link (once); a sign-in is bound when it starts.
    .addColumn('started_at', 'timestamptz')
    .addColumn('used_at', 'timestamptz')
    .execute();
  await db.schema
    .createIndex('upstream_flows_expires_idx')
    .on('upstream_flows')
    .column('expires_at')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('upstream_flows').execute();
  await db.schema.dropTable('account_identities').execute();
}
