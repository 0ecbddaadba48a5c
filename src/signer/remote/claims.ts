// Group commit of signed payments: each payment must claim its session's sequence number and
// have its usage event committed before the answer leaves. Done one payment at a time that is
// three statements per payment (the profile of bench/signer-payments.ts put most of the
// request's CPU there); here payments that arrive while a batch is being written wait and go
// together in the next one — one statement claims every session of the batch, one writes every
// usage event (metering's own insert, rollups included). Latency stays one batch's round
// trips; statements per payment fall with load.
import type { Kysely } from 'kysely';
import type { Recorder, UsageEvent } from '../../metering/index.ts';
import type { Database } from '../../database.ts';
import type { Logger } from '../../platform/log.ts';
import { setImmediate } from 'node:timers';
import { claimSessions, revertSession } from './queries.ts';
import type { SessionClaim } from './queries.ts';

export interface PaymentClaim extends SessionClaim {
  /** The session as it was before this payment (null for a new one), to put it back. */
  previous: { seq: bigint; stateDigest: string } | null;
  event: UsageEvent;
}

export interface ClaimWriter {
  /**
   * Resolves true once the session is claimed and the event committed; false when another
   * payment claimed this sequence number first (a replay). Rejects if either write failed —
   * the session is then put back, so a retry of the same state is paid once.
   */
  claim(claim: PaymentClaim): Promise<boolean>;
}

interface Pending {
  claim: PaymentClaim;
  resolve: (won: boolean) => void;
  reject: (error: unknown) => void;
}

// One batch in flight: everything that arrives meanwhile forms the next one (more writers
// made smaller batches and more statements in bench/signer-payments.ts); a batch is bounded
// so one statement's arrays stay small.
const WRITERS = 1;
const MAX_BATCH = 500;

export function createClaimWriter(deps: {
  db: Kysely<Database>;
  recorder: Pick<Recorder, 'recordNow'>;
  log: Logger;
}): ClaimWriter {
  const { db, recorder, log } = deps;
  let queue: Pending[] = [];
  let writing = 0;
  let scheduled = false;

  function pump() {
    scheduled = false;
    while (writing < WRITERS && queue.length > 0) {
      const batch = queue.slice(0, MAX_BATCH);
      queue = queue.slice(MAX_BATCH);
      writing++;
      void write(batch).finally(() => {
        writing--;
        pump();
      });
    }
  }

  async function write(batch: Pending[]) {
    // One claim per StateID in a statement: a second payment on the same state in the same
    // batch is a replay of it and loses without asking the database.
    const first = new Map<string, Pending>();
    const replays: Pending[] = [];
    for (const p of batch) {
      if (first.has(p.claim.stateId)) replays.push(p);
      else first.set(p.claim.stateId, p);
    }
    let claimed: Set<string>;
    try {
      claimed = await claimSessions(
        db,
        [...first.values()].map((p) => p.claim),
      );
    } catch (error) {
      for (const p of batch) p.reject(error);
      return;
    }
    const winners = [...first.values()].filter((p) => claimed.has(p.claim.stateId));
    for (const p of [...first.values()].filter((q) => !claimed.has(q.claim.stateId))) {
      replays.push(p);
    }
    try {
      if (winners.length > 0) await recorder.recordNow(winners.map((p) => p.claim.event));
    } catch (error) {
      // Nothing is handed out: give every sequence number back so the gateway's retry pays.
      await Promise.all(
        winners.map((p) =>
          revertSession(db, p.claim.stateId, p.claim.seq, p.claim.previous).catch((e: unknown) =>
            log.error({ err: e }, 'signer: could not release a session after a failure'),
          ),
        ),
      );
      for (const p of winners) p.reject(error);
      for (const p of replays) p.resolve(false);
      return;
    }
    for (const p of winners) p.resolve(true);
    for (const p of replays) p.resolve(false);
  }

  return {
    claim(claim) {
      return new Promise<boolean>((resolve, reject) => {
        queue.push({ claim, resolve, reject });
        // After pending I/O: requests already received reach this point first and share
        // the batch.
        if (!scheduled) {
          scheduled = true;
          setImmediate(pump);
        }
      });
    },
  };
}
