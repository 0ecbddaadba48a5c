// Live replica count for cluster-wide limits: every serving replica upserts its row in
// `replicas` each `intervalMs` and counts the rows seen within `ttlMs`, both by PostgreSQL's
// clock. Each replica then enforces 1/N of every limit (limits.ts).
//
// Failure modes (docs/front-door.md#limits):
//   * a replica dies: its row stops being refreshed and drops out of the count after `ttlMs`;
//     until then the others enforce (N−1)/N of the limit in total (stricter, never looser);
//   * a replica starts: until the others' next beat they still divide by N−1 (up to one
//     interval of (N)/(N−1)× the limit);
//   * PostgreSQL is unreachable: each replica keeps the last count it saw (logged), which is
//     exact while no replica comes or goes.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import type { Logger } from '../platform/log.ts';

export interface ReplicaHeartbeatDeps {
  db: Kysely<Database>;
  log: Logger;
  intervalMs: number;
  ttlMs: number;
}

export interface ReplicaHeartbeat {
  readonly id: string;
  /** Live replicas, this one included (1 until the first beat). */
  live(): number;
  /** Writes this replica's row and re-counts (the timer calls it; tests may). */
  beat(): Promise<void>;
  start(): Promise<void>;
  /** Stops the timer and deletes this replica's row, so the others' shares grow at once. */
  close(): Promise<void>;
}

// Rows this much older than the TTL belong to replicas long gone: deleted by whoever beats.
const FORGET_AFTER_TTLS = 10;

export function createReplicaHeartbeat(deps: ReplicaHeartbeatDeps): ReplicaHeartbeat {
  const { db, log, intervalMs, ttlMs } = deps;
  const id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  let live = 1;
  let failing = false;
  let started = false;
  let timer: NodeJS.Timeout | null = null;
  let beating: Promise<void> = Promise.resolve();

  async function beatOnce() {
    try {
      await sql`
        insert into replicas (id) values (${id})
        on conflict (id) do update set seen_at = now()`.execute(db);
      const { rows } = await sql<{ live: string | number }>`
        select count(*) as live from replicas
        where seen_at > now() - make_interval(secs => ${ttlMs / 1000})`.execute(db);
      live = Math.max(1, Number(rows[0]?.live ?? 1));
      await sql`
        delete from replicas
        where seen_at < now() - make_interval(secs => ${(FORGET_AFTER_TTLS * ttlMs) / 1000})`.execute(
        db,
      );
      if (failing) log.info({ live }, 'replica heartbeat restored');
      failing = false;
    } catch (error) {
      if (!failing) {
        log.warn({ err: error, live }, 'replica heartbeat failed; keeping the last replica count');
      }
      failing = true;
    }
  }

  return {
    id,
    live: () => live,
    beat() {
      beating = beating.then(beatOnce);
      return beating;
    },
    async start() {
      if (started) return;
      started = true;
      await this.beat();
      timer = setInterval(() => void this.beat(), intervalMs);
      timer.unref();
    },
    async close() {
      if (timer !== null) clearInterval(timer);
      timer = null;
      if (!started) return;
      started = false;
      await beating;
      try {
        await db.deleteFrom('replicas').where('id', '=', id).execute();
      } catch (error) {
        // Not fatal: the row ages out after the TTL.
        log.warn({ err: error }, 'replica row not deleted at shutdown');
      }
    },
  };
}
