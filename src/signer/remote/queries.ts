// SQL of the remote-signer sessions (signer_sessions).
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Database } from '../../platform/db.ts';

export interface SessionRow {
  accountId: string;
  lastSeq: bigint;
  lastStateDigest: string;
}

export async function findSessionByStateId(
  db: Kysely<Database>,
  stateId: string,
): Promise<SessionRow | null> {
  const row = await db
    .selectFrom('signer_sessions')
    .select(['account_id', 'last_seq', 'last_state_digest'])
    .where('state_id', '=', stateId)
    .executeTakeFirst();
  return row === undefined
    ? null
    : {
        accountId: row.account_id,
        lastSeq: BigInt(row.last_seq),
        lastStateDigest: row.last_state_digest,
      };
}

/** A new session at sequence 0; false if the StateID exists (never, for a random id). */
export async function insertSession(
  db: Kysely<Database>,
  row: {
    stateId: string;
    accountId: string;
    manifestId: string;
    orchestratorAddress: string;
    stateDigest: string;
  },
): Promise<boolean> {
  const inserted = await db
    .insertInto('signer_sessions')
    .values({
      state_id: row.stateId,
      account_id: row.accountId,
      last_seq: 0n,
      last_state_digest: row.stateDigest,
      manifest_id: row.manifestId,
      orchestrator_address: row.orchestratorAddress,
    })
    .onConflict((oc) => oc.column('state_id').doNothing())
    .returning('state_id')
    .executeTakeFirst();
  return inserted !== undefined;
}

/**
 * Moves the session to `seq` only if it belongs to `accountId` and `seq` is newer than the
 * last one recorded: one conditional UPDATE, so two requests with the same state cannot both win.
 */
export async function advanceSession(
  db: Kysely<Database>,
  stateId: string,
  accountId: string,
  seq: bigint,
  stateDigest: string,
): Promise<boolean> {
  const updated = await db
    .updateTable('signer_sessions')
    .set({ last_seq: seq, last_state_digest: stateDigest, updated_at: sql<Date>`now()` })
    .where('state_id', '=', stateId)
    .where('account_id', '=', accountId)
    .where('last_seq', '<', seq)
    .returning('state_id')
    .executeTakeFirst();
  return updated !== undefined;
}

/** Undoes `advanceSession`/`insertSession` when the payment could not be metered. */
export async function revertSession(
  db: Kysely<Database>,
  stateId: string,
  from: bigint,
  to: { seq: bigint; stateDigest: string } | null,
): Promise<void> {
  if (to === null) {
    await db
      .deleteFrom('signer_sessions')
      .where('state_id', '=', stateId)
      .where('last_seq', '=', from)
      .execute();
    return;
  }
  await db
    .updateTable('signer_sessions')
    .set({ last_seq: to.seq, last_state_digest: to.stateDigest })
    .where('state_id', '=', stateId)
    .where('last_seq', '=', from)
    .execute();
}
