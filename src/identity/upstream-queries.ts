// SQL of upstream sign-in: linked identities and the flows waiting for their callback.
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../database.ts';
import type { AccountIdentityRow, UpstreamFlowRow, UpstreamFlowsTable } from './upstream-table.ts';
import type { Insertable } from 'kysely';

type Db = Kysely<Database> | Transaction<Database>;

export async function insertUpstreamFlow(
  db: Db,
  row: Insertable<UpstreamFlowsTable>,
): Promise<void> {
  await db.insertInto('upstream_flows').values(row).execute();
}

/** The flow `stateHash` names if it is still usable (not used, not expired). */
export async function findLiveUpstreamFlow(
  db: Db,
  stateHash: string,
  now: Date,
): Promise<UpstreamFlowRow | undefined> {
  return db
    .selectFrom('upstream_flows')
    .selectAll()
    .where('state_hash', '=', stateHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
}

/** Binds a link flow to the browser that opened it: once. */
export async function startUpstreamFlow(
  db: Db,
  stateHash: string,
  now: Date,
): Promise<UpstreamFlowRow | undefined> {
  return db
    .updateTable('upstream_flows')
    .set({ started_at: now })
    .where('state_hash', '=', stateHash)
    .where('started_at', 'is', null)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .returningAll()
    .executeTakeFirst();
}

/** Uses the flow up; undefined if it was used already, expired or never bound to a browser. */
export async function consumeUpstreamFlow(
  db: Db,
  stateHash: string,
  now: Date,
): Promise<UpstreamFlowRow | undefined> {
  return db
    .updateTable('upstream_flows')
    .set({ used_at: now })
    .where('state_hash', '=', stateHash)
    .where('started_at', 'is not', null)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteExpiredUpstreamFlows(db: Db, now: Date): Promise<number> {
  const result = await db
    .deleteFrom('upstream_flows')
    .where('expires_at', '<', now)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

export async function findIdentityBySubject(
  db: Db,
  provider: string,
  subject: string,
): Promise<AccountIdentityRow | undefined> {
  return db
    .selectFrom('account_identities')
    .selectAll()
    .where('provider', '=', provider)
    .where('subject', '=', subject)
    .executeTakeFirst();
}

export async function listIdentitiesByAccount(
  db: Db,
  accountId: string,
): Promise<AccountIdentityRow[]> {
  return db
    .selectFrom('account_identities')
    .selectAll()
    .where('account_id', '=', accountId)
    .orderBy('linked_at')
    .orderBy('id')
    .execute();
}

export async function insertIdentity(db: Db, row: AccountIdentityRow): Promise<void> {
  await db.insertInto('account_identities').values(row).execute();
}

export async function updateIdentitySeen(
  db: Db,
  id: string,
  input: { email: string | null; lastUsedAt: Date },
): Promise<void> {
  await db
    .updateTable('account_identities')
    .set({ email: input.email, last_used_at: input.lastUsedAt })
    .where('id', '=', id)
    .execute();
}

export async function deleteIdentityById(db: Db, id: string): Promise<void> {
  await db.deleteFrom('account_identities').where('id', '=', id).execute();
}

/** Every identity linked to the account (it is deleted: they may sign up or link anew). */
export async function deleteIdentitiesByAccount(db: Db, accountId: string): Promise<number> {
  const result = await db
    .deleteFrom('account_identities')
    .where('account_id', '=', accountId)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
