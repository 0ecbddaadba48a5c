// SQL for api_keys, and the mapping from rows to the domain object.
import { sql } from 'kysely';
import type { Kysely, Transaction } from 'kysely';
import type { Scope } from '../platform/auth.ts';
import type { Position } from '../platform/cursor.ts';
import { POSITION_TIME } from '../platform/cursor.ts';
import type { Database } from '../database.ts';
import type { KeyKind } from './format.ts';
import type { ApiKeyRow, ApiKeyRowUpdate, NewApiKeyRow } from './table.ts';

type Db = Kysely<Database> | Transaction<Database>;

/** The channel every replica LISTENs on; the payload is `changed:<key id>` or `created:<key id>`. */
export const KEYS_CHANNEL = 'tollhouse_api_keys';

// The recommended rotation schedule: keys older than this are flagged in listings and counted
// by the tollhouse_api_keys_rotation_due gauge.
export const ROTATION_DUE_MS = 90 * 24 * 60 * 60 * 1000;

export interface ApiKey {
  id: string;
  accountId: string;
  appId: string | null;
  kind: KeyKind;
  name: string;
  scopes: Scope[];
  allowedOrigins: string[] | null;
  allowedResources: string[] | null;
  displayPrefix: string;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  replacedBy: string | null;
}

export function toApiKey(row: ApiKeyRow): ApiKey {
  return {
    id: row.id,
    accountId: row.account_id,
    appId: row.app_id,
    kind: row.kind,
    name: row.name,
    scopes: row.scopes as Scope[],
    allowedOrigins: row.allowed_origins,
    allowedResources: row.allowed_resources,
    displayPrefix: row.display_prefix,
    createdBy: row.created_by,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    expiresAt: row.expires_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
    replacedBy: row.replaced_by,
  };
}

export async function insertKey(db: Db, row: NewApiKeyRow): Promise<ApiKeyRow> {
  return db.insertInto('api_keys').values(row).returningAll().executeTakeFirstOrThrow();
}

export async function findKeyById(db: Db, id: string): Promise<ApiKeyRow | undefined> {
  return db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Locks the row for the rest of the transaction (update, revoke and rotate race otherwise). */
export async function findKeyByIdForUpdate(
  trx: Transaction<Database>,
  id: string,
): Promise<ApiKeyRow | undefined> {
  return trx.selectFrom('api_keys').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
}

export type VerifiableKeyRow = ApiKeyRow & { account_status: 'active' | 'disabled' };

/** The verifier's one query: the key by its hash, with its account's status. */
export async function findKeyByHash(
  db: Kysely<Database>,
  keyHash: string,
): Promise<VerifiableKeyRow | undefined> {
  return db
    .selectFrom('api_keys')
    .innerJoin('accounts', 'accounts.id', 'api_keys.account_id')
    .selectAll('api_keys')
    .select('accounts.status as account_status')
    .where('api_keys.key_hash', '=', keyHash)
    .executeTakeFirst();
}

/** What a token made from key `id` needs to know about it: revoked, expiry, account status. */
export async function findKeyStatusById(
  db: Kysely<Database>,
  id: string,
): Promise<
  | Pick<VerifiableKeyRow, 'id' | 'account_id' | 'revoked_at' | 'expires_at' | 'account_status'>
  | undefined
> {
  return db
    .selectFrom('api_keys')
    .innerJoin('accounts', 'accounts.id', 'api_keys.account_id')
    .select([
      'api_keys.id',
      'api_keys.account_id',
      'api_keys.revoked_at',
      'api_keys.expires_at',
      'accounts.status as account_status',
    ])
    .where('api_keys.id', '=', id)
    .executeTakeFirst();
}

/**
 * A page of an account's keys, newest first (`id` breaks ties between keys created in the same
 * microsecond), after `after` (the keyset cursor). `sort_at` is the row's `created_at` rendered
 * by PostgreSQL with microseconds, so a cursor compares exactly as the ordering does. Served by
 * api_keys_account_page_idx.
 */
export async function findKeysByAccount(
  db: Db,
  accountId: string,
  page: { after: Position | null; limit: number },
): Promise<Array<ApiKeyRow & { sort_at: string }>> {
  let query = db
    .selectFrom('api_keys')
    .selectAll()
    .select(sql<string>`to_char(created_at at time zone 'UTC', ${POSITION_TIME})`.as('sort_at'))
    .where('account_id', '=', accountId)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(page.limit);
  if (page.after !== null) {
    query = query.where(
      sql<boolean>`(created_at, id) < (${page.after.at}::timestamptz, ${page.after.id})`,
    );
  }
  return query.execute();
}

export async function updateKeyById(
  trx: Transaction<Database>,
  id: string,
  patch: ApiKeyRowUpdate,
): Promise<ApiKeyRow> {
  return trx
    .updateTable('api_keys')
    .set({ ...patch, updated_at: sql<Date>`now()` })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Tells every replica (this one included) to drop what it cached about `id`, on commit. */
export async function notifyKeyChanged(
  trx: Transaction<Database>,
  id: string,
  change: 'created' | 'changed' = 'changed',
): Promise<void> {
  await sql`select pg_notify(${KEYS_CHANNEL}, ${`${change}:${id}`})`.execute(trx);
}

/** Writes a batch of last-use times in one statement; an older time never overwrites a newer. */
export async function updateLastUsed(
  db: Kysely<Database>,
  uses: ReadonlyArray<readonly [id: string, usedAt: Date]>,
): Promise<void> {
  if (uses.length === 0) return;
  const values = sql.join(
    uses.map(([id, usedAt]) => sql`(${id}, ${usedAt.toISOString()}::timestamptz)`),
  );
  await sql`update api_keys as k
    set last_used_at = greatest(k.last_used_at, v.used_at)
    from (values ${values}) as v(id, used_at)
    where k.id = v.id`.execute(db);
}

/** Active keys created before `createdBefore` (due for rotation). */
export async function countKeysCreatedBefore(
  db: Kysely<Database>,
  createdBefore: Date,
  now: Date,
): Promise<number> {
  const row = await db
    .selectFrom('api_keys')
    .select((eb) => eb.fn.countAll<bigint>().as('count'))
    .where('created_at', '<', createdBefore)
    .where('revoked_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

/** Active keys created in [from, to): their rotation fell due in that window shifted by 90 days. */
export async function findKeysCreatedBetween(
  db: Kysely<Database>,
  from: Date,
  to: Date,
  now: Date,
): Promise<Array<{ id: string; account_id: string; name: string; created_at: Date }>> {
  return db
    .selectFrom('api_keys')
    .select(['id', 'account_id', 'name', 'created_at'])
    .where('created_at', '>=', from)
    .where('created_at', '<', to)
    .where('revoked_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .orderBy('created_at')
    .limit(10_000)
    .execute();
}

/** Every origin some active browser key allows (answers CORS preflights). */
export async function findActiveBrowserOrigins(db: Kysely<Database>, now: Date): Promise<string[]> {
  const rows = await db
    .selectFrom('api_keys')
    .select('allowed_origins')
    .where('kind', '=', 'browser')
    .where('revoked_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .execute();
  return rows.flatMap((row) => row.allowed_origins ?? []);
}
