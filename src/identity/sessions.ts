// An account's sign-ins as oidc-provider stored them (adapter.ts): browser sessions (`Session`)
// and grants that hold refresh tokens (`RefreshToken`, one row per token, grouped by grant).
// SQL only; self-service.ts shapes them for the holder. Every query is limited to the
// account's own rows by `payload->>'accountId'`, so one account's id names nothing of another.
import { sql } from 'kysely';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../database.ts';

type Db = Kysely<Database> | Transaction<Database>;

export interface SessionPayloadRow {
  model: string;
  id: string;
  payload: Record<string, unknown>;
  grant_id: string | null;
  expires_at: Date | null;
}

/** Live (unexpired, unconsumed) browser sessions and refresh tokens of the account. */
export async function listAccountSessionRows(
  db: Db,
  accountId: string,
  now: Date,
): Promise<SessionPayloadRow[]> {
  return db
    .selectFrom('oidc_payloads')
    .select(['model', 'id', 'payload', 'grant_id', 'expires_at'])
    .where('model', 'in', ['Session', 'RefreshToken'])
    .where(sql<boolean>`payload->>'accountId' = ${accountId}`)
    .where('consumed_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .execute();
}

/** The account's browser session stored under `storedId` (the adapter's hashed id). */
export async function findAccountSessionRow(
  db: Db,
  accountId: string,
  storedId: string,
): Promise<SessionPayloadRow | undefined> {
  return db
    .selectFrom('oidc_payloads')
    .select(['model', 'id', 'payload', 'grant_id', 'expires_at'])
    .where('model', '=', 'Session')
    .where('id', '=', storedId)
    .where(sql<boolean>`payload->>'accountId' = ${accountId}`)
    .executeTakeFirst();
}

export async function deleteSessionRow(trx: Transaction<Database>, storedId: string) {
  await trx
    .deleteFrom('oidc_payloads')
    .where('model', '=', 'Session')
    .where('id', '=', storedId)
    .execute();
}

/** Deletes every row of the account's grants `grantIds` (codes, tokens, the grant itself), as
 * the adapter's revokeByGrantId does; returns how many rows went. */
export async function deleteAccountGrants(
  trx: Transaction<Database>,
  accountId: string,
  grantIds: readonly string[],
): Promise<number> {
  if (grantIds.length === 0) return 0;
  const result = await trx
    .deleteFrom('oidc_payloads')
    .where('grant_id', 'in', grantIds)
    .where(sql<boolean>`payload->>'accountId' = ${accountId}`)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
