// SQL of the remote-signer sessions (signer_sessions).
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Database } from '../../database.ts';

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

export interface SessionClaim {
  stateId: string;
  /** The payer the session belongs to. */
  accountId: string;
  /** SequenceNumber of the state being handed out: 0 creates the session. */
  seq: bigint;
  /** sha256(State ‖ Sig) of the state being handed out. */
  stateDigest: string;
  manifestId: string;
  orchestratorAddress: string;
}

/**
 * Claims many sessions in ONE statement: a claim with seq 0 inserts its session (a StateID
 * that exists is not claimed), any other moves its session to `seq` only if it belongs to the
 * same account and `seq` is newer than the last one recorded — a conditional UPDATE, so two
 * payments on one state cannot both win. Returns the StateIDs claimed. At most one claim per
 * StateID (the caller deduplicates). Values travel as text[] so pg and PGlite bind alike.
 */
export async function claimSessions(
  db: Kysely<Database>,
  claims: readonly SessionClaim[],
): Promise<Set<string>> {
  if (claims.length === 0) return new Set();
  const col = (pick: (c: SessionClaim) => string) => claims.map(pick);
  const result = await sql<{ state_id: string }>`
    with input as (
      select state_id, account_id, seq::int8 as seq, digest, manifest_id, orchestrator_address
      from unnest(
        ${col((c) => c.stateId)}::text[],
        ${col((c) => c.accountId)}::text[],
        ${col((c) => c.seq.toString())}::text[],
        ${col((c) => c.stateDigest)}::text[],
        ${col((c) => c.manifestId)}::text[],
        ${col((c) => c.orchestratorAddress)}::text[]
      ) as t(state_id, account_id, seq, digest, manifest_id, orchestrator_address)
    ),
    advanced as (
      update signer_sessions s
      set last_seq = i.seq, last_state_digest = i.digest, updated_at = now()
      from input i
      where i.seq > 0 and s.state_id = i.state_id and s.account_id = i.account_id
        and s.last_seq < i.seq
      returning s.state_id
    ),
    created as (
      insert into signer_sessions (state_id, account_id, last_seq, last_state_digest,
        manifest_id, orchestrator_address)
      select state_id, account_id, 0, digest, manifest_id, orchestrator_address
      from input where seq = 0
      on conflict (state_id) do nothing
      returning state_id
    )
    select state_id from advanced union all select state_id from created
  `.execute(db);
  return new Set(result.rows.map((r) => r.state_id));
}

/** Undoes a claim of `claimSessions` when the payment could not be metered. */
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
