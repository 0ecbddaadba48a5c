import { sql } from 'kysely';
import type { Kysely, Transaction } from 'kysely';
import type { Position } from '../platform/cursor.ts';
import { POSITION_TIME } from '../platform/cursor.ts';
import type { Database } from '../database.ts';
import type {
  AccountRow,
  AccountRowUpdate,
  AppRow,
  AppRowUpdate,
  AppUserRow,
  NewAccountRow,
  NewAppRow,
  SigningKeyRow,
} from './table.ts';

type Db = Kysely<Database> | Transaction<Database>;

export interface Account {
  id: string;
  email: string;
  name: string | null;
  emailVerified: boolean;
  status: 'active' | 'disabled';
  isAdmin: boolean;
  createdAt: Date;
}

export function toAccount(row: AccountRow): Account {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    emailVerified: row.email_verified,
    status: row.status,
    isAdmin: row.is_admin,
    createdAt: row.created_at,
  };
}

export async function insertAccount(
  db: Kysely<Database> | Transaction<Database>,
  row: NewAccountRow,
): Promise<AccountRow> {
  return db.insertInto('accounts').values(row).returningAll().executeTakeFirstOrThrow();
}

export async function findAccountById(
  db: Kysely<Database>,
  id: string,
): Promise<AccountRow | undefined> {
  return db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findAccountByEmail(
  db: Kysely<Database>,
  email: string,
): Promise<AccountRow | undefined> {
  return db
    .selectFrom('accounts')
    .selectAll()
    .where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()))
    .executeTakeFirst();
}

export async function updateAccountById(
  db: Db,
  id: string,
  update: AccountRowUpdate,
): Promise<AccountRow | undefined> {
  return db
    .updateTable('accounts')
    .set({ ...update, updated_at: new Date() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

/** Escapes LIKE wildcards so a search for `a_b%` matches those characters literally. */
function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * Accounts in email order (case-insensitive, the unique index's order), after `afterEmail`
 * (a lower-cased email: the keyset cursor), optionally only those whose email or name contains
 * `search` (case-insensitive) or with `status`. `sort_key` is the row's cursor, computed by
 * PostgreSQL so that it compares exactly as the ordering does.
 */
export async function listAccounts(
  db: Db,
  filter: {
    search: string | null;
    status: 'active' | 'disabled' | null;
    afterEmail: string | null;
    limit: number;
  },
): Promise<Array<AccountRow & { sort_key: string }>> {
  let query = db
    .selectFrom('accounts')
    .selectAll()
    .select(sql<string>`lower(email)`.as('sort_key'))
    .orderBy(sql`lower(email)`)
    .limit(filter.limit);
  if (filter.afterEmail !== null) {
    query = query.where(sql<boolean>`lower(email) > ${filter.afterEmail}`);
  }
  if (filter.status !== null) query = query.where('status', '=', filter.status);
  if (filter.search !== null) {
    const pattern = likePattern(filter.search);
    query = query.where((eb) =>
      eb.or([eb('email', 'ilike', pattern), eb('name', 'ilike', pattern)]),
    );
  }
  return query.execute();
}

/** Every account the access-token verifier treats specially: disabled, or with an address not
 * yet confirmed (issue #18: no gateway or signer scope until it is). */
export async function listRestrictedAccounts(
  db: Db,
): Promise<Array<{ id: string; status: 'active' | 'disabled'; email_verified: boolean }>> {
  return db
    .selectFrom('accounts')
    .select(['id', 'status', 'email_verified'])
    .where((eb) => eb.or([eb('status', '=', 'disabled'), eb('email_verified', '=', false)]))
    .execute();
}

export async function findAccountStatuses(
  db: Db,
  ids: string[],
): Promise<Array<{ id: string; status: 'active' | 'disabled'; email_verified: boolean }>> {
  if (ids.length === 0) return [];
  return db
    .selectFrom('accounts')
    .select(['id', 'status', 'email_verified'])
    .where('id', 'in', ids)
    .execute();
}

/** Locks the account row for the rest of the transaction (concurrent edits serialize). */
export async function findAccountByIdForUpdate(
  trx: Transaction<Database>,
  id: string,
): Promise<AccountRow | undefined> {
  return trx.selectFrom('accounts').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
}

export type AppKind = 'public' | 'web' | 'machine';

export interface App {
  id: string;
  clientId: string;
  ownerAccountId: string;
  name: string;
  kind: AppKind;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  allowedOrigins: string[];
  grantTypes: string[];
  scopes: string[];
  status: 'active' | 'disabled';
  /** Keyed hashes of the secrets that authenticate this client right now. */
  secretHashes: string[];
  previousSecretExpiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export function toApp(row: AppRow, now: Date = new Date()): App {
  const secretHashes = row.secret_hash === null ? [] : [row.secret_hash];
  if (
    row.previous_secret_hash !== null &&
    row.previous_secret_expires_at !== null &&
    row.previous_secret_expires_at > now
  ) {
    secretHashes.push(row.previous_secret_hash);
  }
  return {
    id: row.id,
    clientId: row.client_id,
    ownerAccountId: row.owner_account_id,
    name: row.name,
    kind: row.kind,
    redirectUris: row.redirect_uris,
    postLogoutRedirectUris: row.post_logout_redirect_uris,
    allowedOrigins: row.allowed_origins,
    grantTypes: row.grant_types,
    scopes: row.scopes,
    status: row.status,
    secretHashes,
    previousSecretExpiresAt: row.previous_secret_expires_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export async function insertApp(db: Db, row: NewAppRow): Promise<AppRow> {
  return db.insertInto('apps').values(row).returningAll().executeTakeFirstOrThrow();
}

export async function findAppById(db: Db, id: string): Promise<AppRow | undefined> {
  return db.selectFrom('apps').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The account that owns app `id` (ownership checks of app ids other capabilities receive). */
export async function findAppOwner(db: Db, id: string): Promise<{ accountId: string } | null> {
  const row = await db
    .selectFrom('apps')
    .select('owner_account_id')
    .where('id', '=', id)
    .executeTakeFirst();
  return row === undefined ? null : { accountId: row.owner_account_id };
}

export async function findAppByClientId(db: Db, clientId: string): Promise<AppRow | undefined> {
  return db.selectFrom('apps').selectAll().where('client_id', '=', clientId).executeTakeFirst();
}

/**
 * A page of apps, oldest first (`id` breaks ties within a microsecond), every account's when
 * `ownerAccountId` is null, after `after` (the keyset cursor). `sort_at` is the row's
 * `created_at` rendered by PostgreSQL with microseconds, so a cursor compares exactly as the
 * ordering does. Served by apps_owner_page_idx and apps_page_idx.
 */
export async function listApps(
  db: Db,
  ownerAccountId: string | null,
  page: { after: Position | null; limit: number },
): Promise<Array<AppRow & { sort_at: string }>> {
  let query = db
    .selectFrom('apps')
    .selectAll()
    .select(sql<string>`to_char(created_at at time zone 'UTC', ${POSITION_TIME})`.as('sort_at'))
    .orderBy('created_at')
    .orderBy('id')
    .limit(page.limit);
  if (ownerAccountId !== null) query = query.where('owner_account_id', '=', ownerAccountId);
  if (page.after !== null) {
    query = query.where(
      sql<boolean>`(created_at, id) > (${page.after.at}::timestamptz, ${page.after.id})`,
    );
  }
  return query.execute();
}

export async function updateAppById(
  db: Db,
  id: string,
  update: AppRowUpdate,
): Promise<AppRow | undefined> {
  return db
    .updateTable('apps')
    .set({ ...update, updated_at: new Date() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

/** The app user for (app, external id), created on first use. */
export async function upsertAppUser(
  db: Db,
  row: { id: string; app_id: string; external_id: string },
): Promise<AppUserRow> {
  await db
    .insertInto('app_users')
    .values(row)
    .onConflict((oc) => oc.columns(['app_id', 'external_id']).doNothing())
    .execute();
  return db
    .selectFrom('app_users')
    .selectAll()
    .where('app_id', '=', row.app_id)
    .where('external_id', '=', row.external_id)
    .executeTakeFirstOrThrow();
}

export async function listAppUsers(db: Db, appId: string): Promise<AppUserRow[]> {
  return db
    .selectFrom('app_users')
    .selectAll()
    .where('app_id', '=', appId)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
}

export async function listDisabledAppIds(db: Db): Promise<string[]> {
  const rows = await db.selectFrom('apps').select('id').where('status', '=', 'disabled').execute();
  return rows.map((r) => r.id);
}

export async function listDisabledAppUsers(
  db: Db,
): Promise<Array<{ app_id: string; external_id: string }>> {
  return db
    .selectFrom('app_users')
    .select(['app_id', 'external_id'])
    .where('status', '=', 'disabled')
    .execute();
}

export async function updateAppUserStatus(
  db: Db,
  appId: string,
  externalId: string,
  status: 'active' | 'disabled',
): Promise<AppUserRow | undefined> {
  return db
    .updateTable('app_users')
    .set({ status, updated_at: new Date() })
    .where('app_id', '=', appId)
    .where('external_id', '=', externalId)
    .returningAll()
    .executeTakeFirst();
}

export async function listLiveSigningKeys(db: Db, now: Date): Promise<SigningKeyRow[]> {
  return db
    .selectFrom('signing_keys')
    .selectAll()
    .where((eb) => eb.or([eb('status', '!=', 'retired'), eb('retire_after', '>', now)]))
    .orderBy('created_at')
    .execute();
}

export async function insertSigningKey(
  db: Db,
  row: {
    kid: string;
    alg: string;
    public_jwk: string;
    private_jwk_sealed: string;
    status: 'next' | 'active' | 'retired';
  },
): Promise<void> {
  await db.insertInto('signing_keys').values(row).execute();
}
