// Second factors (issue #18 item 4): a TOTP secret per account (sealed, as other secrets are),
// single-use recovery codes (only keyed hashes), WebAuthn passkeys, and the short-lived state a
// sign-in or an enrolment carries between two requests (a WebAuthn challenge, "the password was
// right, a second factor is due"). Frozen in time: imports nothing from the app.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('account_totp')
    .addColumn('account_id', 'text', (col) =>
      col.primaryKey().references('accounts.id').onDelete('cascade'),
    )
    // AES-GCM under a TOLLHOUSE_SECRET subkey, the account id as associated data.
    .addColumn('secret_sealed', 'text', (col) => col.notNull())
    // Null until the holder typed a code from the app: an unconfirmed secret is not a factor.
    .addColumn('confirmed_at', 'timestamptz')
    // RFC 6238 §5.2: the time step of the last accepted code; a code is accepted once.
    .addColumn('last_step', 'bigint')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull())
    .execute();
  await db.schema
    .createTable('account_recovery_codes')
    // HMAC-SHA256 (TOLLHOUSE_SECRET subkey) of the account id and the code.
    .addColumn('code_hash', 'text', (col) => col.primaryKey())
    .addColumn('account_id', 'text', (col) =>
      col.notNull().references('accounts.id').onDelete('cascade'),
    )
    .addColumn('created_at', 'timestamptz', (col) => col.notNull())
    .addColumn('used_at', 'timestamptz')
    .execute();
  await db.schema
    .createIndex('account_recovery_codes_account_idx')
    .on('account_recovery_codes')
    .column('account_id')
    .execute();
  await db.schema
    .createTable('account_passkeys')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('account_id', 'text', (col) =>
      col.notNull().references('accounts.id').onDelete('cascade'),
    )
    // base64url, as WebAuthn names it; unique across accounts (a passwordless sign-in finds
    // the account by it).
    .addColumn('credential_id', 'text', (col) => col.notNull().unique())
    .addColumn('public_key', 'text', (col) => col.notNull())
    .addColumn('sign_count', 'bigint', (col) => col.notNull())
    .addColumn('transports', 'jsonb', (col) => col.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('device_type', 'text', (col) =>
      col.notNull().check(sql`device_type in ('singleDevice', 'multiDevice')`),
    )
    .addColumn('backed_up', 'boolean', (col) => col.notNull())
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull())
    .addColumn('last_used_at', 'timestamptz')
    .execute();
  await db.schema
    .createIndex('account_passkeys_account_idx')
    .on('account_passkeys')
    .column('account_id')
    .execute();
  await db.schema
    .createTable('second_factor_states')
    // HMAC of `<purpose>:<id>` (an interaction uid, an account id): the uid is a bearer value.
    .addColumn('key_hash', 'text', (col) => col.primaryKey())
    // The account whose password (or upstream sign-in) was accepted; null before that.
    .addColumn('account_id', 'text', (col) => col.references('accounts.id').onDelete('cascade'))
    // The factors used so far (RFC 8176 values).
    .addColumn('amr', 'jsonb', (col) => col.notNull().defaultTo(sql`'[]'::jsonb`))
    // The WebAuthn challenge last handed out for this key (base64url).
    .addColumn('challenge', 'text')
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    .execute();
  await db.schema
    .createIndex('second_factor_states_expires_idx')
    .on('second_factor_states')
    .column('expires_at')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('second_factor_states').execute();
  await db.schema.dropTable('account_passkeys').execute();
  await db.schema.dropTable('account_recovery_codes').execute();
  await db.schema.dropTable('account_totp').execute();
}
