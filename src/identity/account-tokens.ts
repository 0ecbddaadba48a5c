// The single-use tokens e-mailed to people (issue #18): their format, and their table. A token
// is 256 random bits in base62 behind a prefix naming its purpose, so a mistyped or truncated
// link is refused before any query and a link of one kind cannot be used as another. Only an
// HMAC of the token is stored; using one is a single UPDATE … WHERE used_at IS NULL, so two
// concurrent uses cannot both succeed.
import { sql } from 'kysely';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../database.ts';
import { randomBase62 } from '../platform/ids.ts';
import type { AccountTokenPurpose, AccountTokenRow, NewAccountTokenRow } from './table.ts';

type Db = Kysely<Database> | Transaction<Database>;

const PREFIX: Record<AccountTokenPurpose, string> = {
  verify_email: 'thve',
  reset_password: 'thpr',
  invitation: 'thiv',
  change_email: 'thce',
};
// 32 random bytes → 43 base62 characters (randomBase62 is fixed width).
const TOKEN_BYTES = 32;
const TOKEN_SHAPE = /^(thve|thpr|thiv|thce)_[0-9A-Za-z]{43}$/;

export function mintAccountToken(purpose: AccountTokenPurpose): string {
  return `${PREFIX[purpose]}_${randomBase62(TOKEN_BYTES)}`;
}

/** Whether `token` has the shape of a token for `purpose` (no query for anything else). */
export function isAccountToken(token: unknown, purpose: AccountTokenPurpose): token is string {
  return (
    typeof token === 'string' && TOKEN_SHAPE.test(token) && token.startsWith(`${PREFIX[purpose]}_`)
  );
}

export async function insertAccountToken(db: Db, row: NewAccountTokenRow): Promise<void> {
  await db.insertInto('account_tokens').values(row).execute();
}

/** The token if it is unused and unexpired at `now` (to decide whether to show a form). */
export async function findLiveAccountToken(
  db: Db,
  hash: string,
  purpose: AccountTokenPurpose,
  now: Date,
): Promise<AccountTokenRow | undefined> {
  return db
    .selectFrom('account_tokens')
    .selectAll()
    .where('token_hash', '=', hash)
    .where('purpose', '=', purpose)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
}

/** Marks the token used and returns it, or undefined when it is unknown, used or expired. */
export async function consumeAccountToken(
  trx: Transaction<Database>,
  hash: string,
  purpose: AccountTokenPurpose,
  now: Date,
): Promise<AccountTokenRow | undefined> {
  return trx
    .updateTable('account_tokens')
    .set({ used_at: now })
    .where('token_hash', '=', hash)
    .where('purpose', '=', purpose)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .returningAll()
    .executeTakeFirst();
}

/** Retires the account's other unused tokens of `purpose` (one reset ends every reset link). */
export async function retireAccountTokens(
  trx: Transaction<Database>,
  accountId: string,
  purpose: AccountTokenPurpose,
  now: Date,
): Promise<void> {
  await trx
    .updateTable('account_tokens')
    .set({ used_at: now })
    .where('account_id', '=', accountId)
    .where('purpose', '=', purpose)
    .where('used_at', 'is', null)
    .execute();
}

/** Retires the unused invitations to `email` (an accepted one makes the others moot). */
export async function retireInvitations(
  trx: Transaction<Database>,
  email: string,
  now: Date,
): Promise<void> {
  await trx
    .updateTable('account_tokens')
    .set({ used_at: now })
    .where('purpose', '=', 'invitation')
    .where(sql<boolean>`lower(email) = ${email.toLowerCase()}`)
    .where('used_at', 'is', null)
    .execute();
}

export async function deleteAccountToken(db: Db, hash: string): Promise<void> {
  await db.deleteFrom('account_tokens').where('token_hash', '=', hash).execute();
}

// oidc-provider's models that stand for a signed-in person (payload.accountId): deleting them
// ends every session and every refresh token, so nothing signed in before a password reset
// can get a new access token. Access tokens already issued are JWTs and live out their TTL.
const SESSION_MODELS = ['Session', 'RefreshToken', 'AuthorizationCode', 'DeviceCode'];

/** Ends the account's OpenID provider sessions and refresh tokens; returns how many rows. */
export async function deleteAccountSessions(
  trx: Transaction<Database>,
  accountId: string,
): Promise<number> {
  const result = await trx
    .deleteFrom('oidc_payloads')
    .where('model', 'in', SESSION_MODELS)
    .where(sql<boolean>`payload->>'accountId' = ${accountId}`)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Invitations `createdBy` made since `since` (an account holder's daily allowance). */
export async function countInvitationsSince(
  db: Db,
  createdBy: string,
  since: Date,
): Promise<number> {
  const row = await db
    .selectFrom('account_tokens')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('purpose', '=', 'invitation')
    .where('created_by', '=', createdBy)
    .where('created_at', '>', since)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Invitations still usable at `now`, newest first. */
export async function findPendingInvitations(db: Db, now: Date): Promise<AccountTokenRow[]> {
  return db
    .selectFrom('account_tokens')
    .selectAll()
    .where('purpose', '=', 'invitation')
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .orderBy('created_at', 'desc')
    .execute();
}

/** Ends the usable invitations to `email`; how many there were. */
export async function revokeInvitationsTo(
  trx: Transaction<Database>,
  email: string,
  now: Date,
): Promise<number> {
  const result = await trx
    .updateTable('account_tokens')
    .set({ used_at: now })
    .where('purpose', '=', 'invitation')
    .where(sql<boolean>`lower(email) = ${email.toLowerCase()}`)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Deletes the tokens used, or expired, before `before`; how many. */
export async function deleteStaleAccountTokens(db: Db, before: Date): Promise<number> {
  const result = await db
    .deleteFrom('account_tokens')
    .where((eb) => eb.or([eb('used_at', '<', before), eb('expires_at', '<', before)]))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
