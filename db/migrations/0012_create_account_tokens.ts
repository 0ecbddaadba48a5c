// Single-use tokens sent by e-mail (issue #18): verify an address, reset a password, accept an
// invitation. Only a keyed hash of each token is stored, so a database leak hands out no live
// link. An invitation names an address, not an account: the account is created when it is
// accepted. Frozen in time: imports nothing from the app.
//
// Until now every account was made by an operator, and an address an operator typed in counts
// as confirmed (the accounts service already said so; accounts made by `keys create --email`
// took the column's default, false). From now on an unconfirmed address means something: no
// gateway or signer credentials until the owner confirms it. So every existing account is
// marked confirmed, and an account is confirmed unless whoever creates it says otherwise, as
// self sign-up does.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`update accounts set email_verified = true where email_verified = false`.execute(db);
  await sql`alter table accounts alter column email_verified set default true`.execute(db);
  await db.schema
    .createTable('account_tokens')
    // HMAC-SHA256 (TOLLHOUSE_SECRET subkey) of the token in the link.
    .addColumn('token_hash', 'text', (col) => col.primaryKey())
    .addColumn('purpose', 'text', (col) =>
      col.notNull().check(sql`purpose in ('verify_email', 'reset_password', 'invitation')`),
    )
    // Null for an invitation (the account does not exist yet).
    .addColumn('account_id', 'text', (col) => col.references('accounts.id').onDelete('cascade'))
    // The address the link was sent to: a verification proves this address, not whatever the
    // account's address is by the time the link is opened.
    .addColumn('email', 'text', (col) => col.notNull())
    // Who asked for it: `acct_…`, `cli`, or `self` (sign-up, forgot password).
    .addColumn('created_by', 'text', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull())
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    .addColumn('used_at', 'timestamptz')
    .execute();
  // Using one token retires the account's other tokens of the same purpose.
  await db.schema
    .createIndex('account_tokens_account_idx')
    .on('account_tokens')
    .columns(['account_id', 'purpose'])
    .execute();
  await db.schema
    .createIndex('account_tokens_expires_idx')
    .on('account_tokens')
    .column('expires_at')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('account_tokens').execute();
  // Which accounts were confirmed before `up` is not known: they stay confirmed.
  await sql`alter table accounts alter column email_verified set default false`.execute(db);
}
