// Metering rules: durable recording (partitions on demand, idempotent inserts, rollups in the
// same statement), who may see which usage, and retention.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Principal } from '../platform/auth.ts';
import { principalKind } from '../platform/authz.ts';
import type { Database, DatabaseHandle } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import type { RecordOutcome, UsageEvent } from './model.ts';
import {
  createPartition,
  dropPartition,
  findExistingAccountIds,
  findStoredEventKeys,
  insertNewUsageEvents,
  insertUsageEvents,
  isDuplicateKey,
  isMissingPartition,
  listPartitionMonths,
  listUsageEvents,
  monthOf,
  storedKeyOf,
  sumUsage,
} from './queries.ts';
import type { EventCursor, GroupBy, UsageFilter, UsageRow } from './queries.ts';

// Replicas drop their partition cache when another replica prunes.
const PARTITIONS_CHANNEL = 'tollhouse_usage_partitions';

export interface MeteringServiceDeps {
  database: DatabaseHandle;
  log: Logger;
}

export interface UsageQuery {
  from: Date;
  to: Date;
  accountId?: string;
  appId?: string;
  endUserId?: string;
  pipeline?: string;
  modelId?: string;
}

export type MeteringService = ReturnType<typeof createMeteringService>;

export function createMeteringService({ database, log }: MeteringServiceDeps) {
  const db: Kysely<Database> = database.db;
  const knownPartitions = new Set<string>();
  let stopListening: (() => Promise<void>) | null = null;
  // Duplicates come in runs: a collector re-sending its backlog, a client retrying a batch,
  // the recorder retrying after an unknown outcome. After a batch that held any, the next
  // batch first asks which keys are stored (a key-only query, much cheaper than attempting
  // the insert) and inserts only the rest; a run of fresh batches skips that question.
  let expectDuplicates = false;

  async function ensurePartitions(months: Iterable<string>) {
    for (const month of new Set(months)) {
      if (knownPartitions.has(month)) continue;
      await db.transaction().execute((trx) => createPartition(trx, month));
      knownPartitions.add(month);
    }
  }

  /** Runs an insert; if another replica pruned a month we thought existed, forgets the
   * partition cache, recreates the months and runs it once more. */
  async function withPartitions<T>(months: readonly string[], insert: () => Promise<T>) {
    try {
      return await insert();
    } catch (error) {
      if (!isMissingPartition(error)) throw error;
      knownPartitions.clear();
      await ensurePartitions(months);
      return insert();
    }
  }

  /**
   * Commits `events` before resolving: each is 'accepted' (stored now) or 'duplicate'
   * (stored before). Safe to retry with the same events.
   */
  async function record(events: readonly UsageEvent[]): Promise<RecordOutcome[]> {
    if (events.length === 0) return [];
    const months = events.map((e) => monthOf(e.occurredAt));
    await ensurePartitions(months);
    if (!expectDuplicates) {
      // A run of fresh batches (the recorder's, every 100 ms): inserted as they are, with no
      // per-event key strings and sets. A stored key, or a key twice in the batch, fails the
      // statement and nothing is written (isDuplicateKey); the careful path below then runs.
      try {
        await withPartitions(months, () => insertNewUsageEvents(db, events));
        return events.map(() => 'accepted');
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
        expectDuplicates = true;
      }
    }
    const keys = events.map((e, i) => storedKeyOf(e.source, e.eventId, months[i]!));
    const stored = expectDuplicates
      ? await findStoredEventKeys(db, events, months)
      : new Set<string>();
    // The events believed new: the first copy of each key not known to be stored.
    const seen = new Set(stored);
    const candidates: number[] = [];
    keys.forEach((key, i) => {
      if (seen.has(key)) return;
      seen.add(key);
      candidates.push(i);
    });
    const batch = candidates.length === events.length ? events : candidates.map((i) => events[i]!);
    let accepted = new Set<string>();
    if (batch.length > 0) {
      try {
        await withPartitions(months, () => insertNewUsageEvents(db, batch));
        accepted = new Set(candidates.map((i) => keys[i]!));
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
        // Some key was stored after all (unchecked batch, or another writer since the
        // check): nothing was written; insert again skipping the stored keys.
        const inserted = await withPartitions(months, () => insertUsageEvents(db, batch));
        accepted = new Set(inserted.map((k) => storedKeyOf(k.source, k.eventId, k.month)));
      }
    }
    expectDuplicates = accepted.size < events.length;
    // Within one batch the first copy of a key is the accepted one.
    return keys.map((key) => {
      if (!accepted.has(key)) return 'duplicate';
      accepted.delete(key);
      return 'accepted';
    });
  }

  /** Narrows a query to what `principal` may see; admin sees everything. */
  function visibleFilter(principal: Principal, query: UsageQuery): UsageFilter {
    if (principal.scopes.includes('admin')) return { ...query };
    // Only an app's own token: a token made from a key bound to an app is the key's account's.
    if (principalKind(principal) === 'app_client') {
      // An app's machine client sees its app's users, whoever pays.
      return { ...query, appId: principal.appId!, accountId: query.accountId };
    }
    return {
      ...query,
      accountId: principal.accountId,
      ...(principal.endUserId !== null ? { endUserId: principal.endUserId } : {}),
    };
  }

  return {
    record,
    existingAccounts: (ids: readonly string[]) => findExistingAccountIds(db, ids),

    async summarize(principal: Principal, query: UsageQuery, groupBy: readonly GroupBy[]) {
      return sumUsage(db, visibleFilter(principal, query), groupBy);
    },

    async events(
      principal: Principal,
      query: UsageQuery,
      cursor: EventCursor | null,
      limit: number,
    ) {
      return listUsageEvents(db, visibleFilter(principal, query), cursor, limit);
    },

    /** Totals for operators (CLI): no principal, everything visible. */
    summarizeAll(query: UsageQuery, groupBy: readonly GroupBy[]): Promise<UsageRow[]> {
      return sumUsage(db, { ...query }, groupBy);
    },

    /** Drops every monthly partition before `month` (YYYY-MM); returns the months dropped. */
    async prune(month: string): Promise<string[]> {
      const months = (await listPartitionMonths(db)).filter((m) => m < month);
      for (const m of months) {
        await db.transaction().execute(async (trx) => {
          await dropPartition(trx, m);
        });
        knownPartitions.delete(m);
      }
      if (months.length > 0) {
        await sql`select pg_notify(${PARTITIONS_CHANNEL}, ${months.join(',')})`.execute(db);
        log.info({ months }, 'usage partitions dropped');
      }
      return months;
    },

    partitions: () => listPartitionMonths(db),

    async start() {
      stopListening = await database.listen(PARTITIONS_CHANNEL, () => knownPartitions.clear());
    },

    async stop() {
      await stopListening?.();
      stopListening = null;
    },
  };
}
