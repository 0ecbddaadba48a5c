// Metering rules: durable recording (partitions on demand, idempotent inserts, rollups in the
// same statement), who may see which usage, and retention.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Principal } from '../platform/auth.ts';
import type { Database, DatabaseHandle } from '../platform/db.ts';
import type { Logger } from '../platform/log.ts';
import type { RecordOutcome, UsageEvent } from './model.ts';
import {
  createPartition,
  dropPartition,
  findExistingAccountIds,
  insertUsageEvents,
  isMissingPartition,
  listPartitionMonths,
  listUsageEvents,
  monthOf,
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

  async function ensurePartitions(events: readonly UsageEvent[]) {
    const months = new Set(events.map((e) => monthOf(e.occurredAt)));
    for (const month of months) {
      if (knownPartitions.has(month)) continue;
      await db.transaction().execute((trx) => createPartition(trx, month));
      knownPartitions.add(month);
    }
  }

  /**
   * Commits `events` before resolving: each is 'accepted' (stored now) or 'duplicate'
   * (stored before). Safe to retry with the same events.
   */
  async function record(events: readonly UsageEvent[]): Promise<RecordOutcome[]> {
    if (events.length === 0) return [];
    await ensurePartitions(events);
    let inserted;
    try {
      inserted = await insertUsageEvents(db, events);
    } catch (error) {
      if (!isMissingPartition(error)) throw error;
      // Another replica pruned a month we thought existed: forget, recreate, retry once.
      knownPartitions.clear();
      await ensurePartitions(events);
      inserted = await insertUsageEvents(db, events);
    }
    const fresh = new Set(inserted.map((k) => `${k.source}\u0000${k.eventId}`));
    // Within one batch the first copy of a key is the accepted one.
    return events.map((e) => {
      const key = `${e.source}\u0000${e.eventId}`;
      if (!fresh.has(key)) return 'duplicate';
      fresh.delete(key);
      return 'accepted';
    });
  }

  /** Narrows a query to what `principal` may see; admin sees everything. */
  function visibleFilter(principal: Principal, query: UsageQuery): UsageFilter {
    if (principal.scopes.includes('admin')) return { ...query };
    if (principal.appId !== null && principal.clientId !== null && principal.endUserId === null) {
      // An app's machine client sees its app's users, whoever pays.
      return { ...query, appId: principal.appId, accountId: query.accountId };
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
