import { randomInt } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { UsageEvent } from '../../src/metering/index.ts';
import { createMeteringService, createRecorder } from '../../src/metering/index.ts';
import type { DatabaseHandle } from '../../src/database.ts';
import { createLogger } from '../../src/platform/log.ts';
import { migrateToLatest } from '../../src/platform/migrations.ts';
import { createTestDatabase } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';
import { createAccount } from '../support/fixtures.ts';

const log = createLogger({ level: 'silent' });
let database: TestDatabase;
let handle: DatabaseHandle;
let accounts: string[];

beforeAll(async () => {
  database = await createTestDatabase();
  handle = await database.open();
  await migrateToLatest(handle.db);
  accounts = [
    await createAccount(handle.db),
    await createAccount(handle.db),
    await createAccount(handle.db),
  ];
});
afterAll(async () => {
  await database.destroy();
});

let sequence = 0;
function event(overrides: Partial<UsageEvent> = {}): UsageEvent {
  sequence++;
  return {
    source: 'test',
    eventId: `evt-${sequence}`,
    occurredAt: new Date('2026-11-20T10:15:00Z'),
    accountId: accounts[0]!,
    appId: null,
    keyId: null,
    clientId: null,
    endUserId: null,
    pipeline: 'text-to-image',
    modelId: 'sdxl',
    unit: 'pixels',
    quantity: 1024n * 1024n,
    feeWei: 4_718_592_000_000n,
    status: 200,
    latencyMs: 850,
    attributes: {},
    ...overrides,
  };
}

describe('recording usage events', () => {
  it('stores each event once: a replayed batch and in-batch copies are duplicates', async () => {
    const service = createMeteringService({ database: handle, log });
    const a = event();
    const b = event();
    expect(await service.record([a, b, { ...a }])).toEqual(['accepted', 'accepted', 'duplicate']);
    expect(await service.record([a, b])).toEqual(['duplicate', 'duplicate']);

    // A new service instance is what a restart looks like: the database still dedupes.
    const restarted = createMeteringService({ database: handle, log });
    expect(await restarted.record([b])).toEqual(['duplicate']);
    const stored = await sql<{
      n: bigint;
    }>`select count(*) as n from usage_events where event_id in (${a.eventId}, ${b.eventId})`.execute(
      handle.db,
    );
    expect(stored.rows[0]!.n).toBe(2n);
  });

  it('gives the same outcomes whether a batch is inserted directly, after a failed attempt, or after a key check', async () => {
    // A fresh service inserts a batch as new and falls back when a key is stored; after a
    // batch with duplicates it checks keys first. Every path must agree on the outcomes.
    const stored = event();
    const seed = createMeteringService({ database: handle, log });
    expect(await seed.record([stored])).toEqual(['accepted']);
    // The same id in another month is another key (the month is part of it).
    const otherMonth = { ...stored, occurredAt: new Date('2026-10-20T10:15:00Z') };
    const batchOf = () => {
      const fresh = event();
      return {
        fresh,
        batch: [fresh, { ...stored }, { ...fresh }, otherMonth],
      };
    };
    for (const round of ['direct-then-fallback', 'checked'] as const) {
      const service = createMeteringService({ database: handle, log });
      if (round === 'checked') {
        // Leaves the service expecting duplicates: its next batch is checked first.
        expect(await service.record([{ ...stored }])).toEqual(['duplicate']);
      }
      const { batch } = batchOf();
      const outcomes = await service.record(batch);
      expect(outcomes.slice(0, 3)).toEqual(['accepted', 'duplicate', 'duplicate']);
      // otherMonth is accepted the first time and a duplicate afterwards.
      expect(outcomes[3]).toBe(round === 'direct-then-fallback' ? 'accepted' : 'duplicate');
      expect(await service.record(batch)).toEqual([
        'duplicate',
        'duplicate',
        'duplicate',
        'duplicate',
      ]);
    }
    const rows = await sql<{ n: bigint }>`
      select count(*) as n from usage_events where event_id = ${stored.eventId}`.execute(handle.db);
    expect(rows.rows[0]!.n).toBe(2n);
  });

  it('keeps wei exact beyond 2^53 and beyond 2^64', async () => {
    const service = createMeteringService({ database: handle, log });
    const fee = 2n ** 200n + 12345678901234567890123456789n;
    const e = event({ feeWei: fee, quantity: 2n ** 70n, accountId: accounts[2]! });
    await service.record([e]);
    const row = await handle.db
      .selectFrom('usage_events')
      .select(['fee_wei', 'quantity'])
      .where('event_id', '=', e.eventId)
      .executeTakeFirstOrThrow();
    expect(BigInt(row.fee_wei)).toBe(fee);
    expect(BigInt(row.quantity)).toBe(2n ** 70n);
  });

  it('creates monthly partitions on demand and prunes whole months', async () => {
    const service = createMeteringService({ database: handle, log });
    await service.record([
      event({ occurredAt: new Date('2025-01-31T23:59:59.999Z') }),
      event({ occurredAt: new Date('2025-02-01T00:00:00Z') }),
      event({ occurredAt: new Date('2025-03-15T12:00:00Z') }),
    ]);
    expect(await service.partitions()).toEqual(
      expect.arrayContaining(['2025-01', '2025-02', '2025-03']),
    );
    expect(await service.prune('2025-03')).toEqual(['2025-01', '2025-02']);
    const months = await service.partitions();
    expect(months).not.toContain('2025-01');
    expect(months).toContain('2025-03');
    // Recording into a pruned month works again: the partition is recreated.
    expect(await service.record([event({ occurredAt: new Date('2025-01-10T00:00:00Z') })])).toEqual(
      ['accepted'],
    );
  });

  it('keeps rollups equal to a full recount from raw events after a randomized workload', async () => {
    const service = createMeteringService({ database: handle, log });
    const pipelines = ['text-to-image', 'llm', 'audio-to-text', 'live-video-to-video'];
    const units = ['pixels', 'tokens', 'milliseconds', 'seconds'] as const;
    const pool: UsageEvent[] = [];
    for (let i = 0; i < 1500; i++) {
      const p = randomInt(pipelines.length);
      pool.push(
        event({
          source: `random-${randomInt(3)}`,
          accountId: accounts[randomInt(accounts.length)]!,
          appId: randomInt(3) === 0 ? null : `app_${randomInt(3)}`,
          endUserId: randomInt(2) === 0 ? null : `user-${randomInt(5)}`,
          pipeline: pipelines[p]!,
          modelId: randomInt(4) === 0 ? null : `model-${randomInt(3)}`,
          unit: units[p]!,
          occurredAt: new Date(Date.UTC(2026, 9, 1 + randomInt(28), randomInt(24), randomInt(60))),
          quantity: BigInt(randomInt(1, 10_000_000)),
          feeWei: BigInt(randomInt(0, 2 ** 47)) * 1_000_003n,
          status: randomInt(10) === 0 ? 502 : 200,
        }),
      );
    }
    // Random batches, some replayed, several in flight at once (as replicas would write).
    const batches: UsageEvent[][] = [];
    for (let i = 0; i < pool.length;) {
      const size = randomInt(1, 200);
      batches.push(pool.slice(i, i + size));
      i += size;
    }
    const replays = batches.filter(() => randomInt(4) === 0);
    await Promise.all([...batches, ...replays].map((batch) => service.record(batch)));

    const recount = await sql<Record<string, string>>`
      select account_id, coalesce(app_id, '') as app_id, coalesce(end_user_id, '') as end_user_id,
             pipeline, coalesce(model_id, '') as model_id, unit,
             date_trunc('hour', occurred_at at time zone 'UTC') at time zone 'UTC' as hour,
             count(*)::text as events, (count(*) filter (where status >= 400))::text as failed,
             sum(quantity)::text as quantity, sum(fee_wei)::text as fee
      from usage_events where occurred_at >= '2026-10-01' and occurred_at < '2026-11-01'
      group by 1, 2, 3, 4, 5, 6, 7`.execute(handle.db);
    const rollups = await sql<Record<string, string>>`
      select account_id, app_id, end_user_id, pipeline, model_id, unit, hour,
             events::text as events, failed_events::text as failed, quantity::text as quantity,
             fee_wei::text as fee
      from usage_rollups where hour >= '2026-10-01' and hour < '2026-11-01'`.execute(handle.db);
    const key = (r: Record<string, unknown>) =>
      JSON.stringify([
        r.account_id,
        r.app_id,
        r.end_user_id,
        r.pipeline,
        r.model_id,
        r.unit,
        new Date(r.hour as string).toISOString(),
        r.events,
        r.failed,
        r.quantity,
        r.fee,
      ]);
    expect(rollups.rows.map(key).sort()).toEqual(recount.rows.map(key).sort());
    expect(recount.rows.length).toBeGreaterThan(100);
    const total = await sql<{
      n: bigint;
    }>`select count(*) as n from usage_events where source like 'random-%'`.execute(handle.db);
    expect(total.rows[0]!.n).toBe(1500n);
  });
});

describe('the recorder', () => {
  it('writes buffered events in batches, applies backpressure at its bound, and flushes on close', async () => {
    const service = createMeteringService({ database: handle, log });
    const batchSizes: number[] = [];
    const recorder = createRecorder({
      write: async (events) => {
        batchSizes.push(events.length);
        return service.record(events);
      },
      log,
      batchSize: 50,
      flushIntervalMs: 60_000, // only size and close trigger writes in this test
      maxBuffered: 120,
    });
    const events = Array.from({ length: 500 }, () =>
      event({ source: 'recorder', accountId: accounts[1]! }),
    );
    let maxSeen = 0;
    // With room, enqueue returns nothing (no promise per event); at the bound, a promise.
    const returned: Array<'nothing' | 'promise'> = [];
    for (const e of events) {
      const waiting = recorder.enqueue(e);
      returned.push(waiting === undefined ? 'nothing' : 'promise');
      await waiting;
      maxSeen = Math.max(maxSeen, recorder.stats().buffered);
    }
    expect(maxSeen).toBeLessThanOrEqual(120);
    expect(returned[0]).toBe('nothing');
    expect(returned).toContain('promise');
    await recorder.close();
    expect(recorder.stats()).toMatchObject({ buffered: 0, written: 500 });
    expect(Math.max(...batchSizes)).toBeLessThanOrEqual(50);
    const stored = await sql<{
      n: bigint;
    }>`select count(*) as n from usage_events where source = 'recorder'`.execute(handle.db);
    expect(stored.rows[0]!.n).toBe(500n);
  });

  // The recorder's flush ticks, backoff and stall detection are timers: these tests move
  // Vitest's fake timers instead of waiting for them.
  it('drains a long backlog on close, however long the writes take', async () => {
    vi.useFakeTimers();
    try {
      let written = 0;
      const recorder = createRecorder({
        // Each batch takes 400 ms: the backlog takes longer than one backoff cycle to drain.
        write: async (events) => {
          await new Promise((r) => setTimeout(r, 400));
          written += events.length;
          return events.map(() => 'accepted' as const);
        },
        log,
        batchSize: 10,
        writers: 1,
        flushIntervalMs: 60_000,
      });
      for (let i = 0; i < 200; i++) await recorder.enqueue(event({ source: 'slow' }));
      const closing = recorder.close();
      // 20 batches of 400 ms: 8 s, more than the 6 s without progress after which close gives up.
      await vi.advanceTimersByTimeAsync(20 * 400);
      await closing;
      expect(written).toBe(200);
      expect(recorder.stats()).toMatchObject({ buffered: 0, written: 200 });
    } finally {
      vi.useRealTimers();
    }
  });

  it('closes promptly after idle ticks with nothing to write', async () => {
    vi.useFakeTimers();
    try {
      const recorder = createRecorder({ write: async () => [], log, flushIntervalMs: 5 });
      await vi.advanceTimersByTimeAsync(30); // several empty ticks
      await recorder.flush();
      await recorder.close();
      expect(recorder.stats()).toEqual({ buffered: 0, written: 0, failedWrites: 0 });
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps events across a failed write and retries them', async () => {
    const service = createMeteringService({ database: handle, log });
    let failures = 1;
    const recorder = createRecorder({
      write: async (events) => {
        if (failures-- > 0) throw new Error('database went away');
        return service.record(events);
      },
      log,
      batchSize: 10,
      flushIntervalMs: 20,
    });
    for (let i = 0; i < 25; i++)
      await recorder.enqueue(event({ source: 'retry', accountId: accounts[1]! }));
    await recorder.flush();
    await recorder.close();
    expect(recorder.stats()).toMatchObject({ buffered: 0, written: 25, failedWrites: 1 });
    const stored = await sql<{
      n: bigint;
    }>`select count(*) as n from usage_events where source = 'retry'`.execute(handle.db);
    expect(stored.rows[0]!.n).toBe(25n);
  });
});
