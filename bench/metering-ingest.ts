// Metering benchmark on real PostgreSQL.
//
//   node bench/metering-ingest.ts [--events 200000] [--stored 10000000] [--queries 200]
//     [--baseline 10000] [--writers N] [--batch N]   (recorder defaults when not given)
//
// BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names a server; the
// benchmark creates its own database there and drops it at the end. It measures, in one run:
//   1. baseline: plain single-row INSERTs of the same events, one statement each;
//   2. ingest through the recorder (buffered batches, idempotent insert + rollups);
//   3. replay of the same events through the recorder (every one a duplicate);
//   4. usage totals for one account over one month (the query behind GET /v1/usage),
//      p50/p95/p99, with `--stored` events in the table (bulk-generated in SQL).
// For 2 and 3 it also reports the CPU time spent per event, in this Node process and in the
// PostgreSQL backends serving the benchmark database (read from /proc, so only when the
// server runs on this host). On a shared machine events/s move with everyone else's load;
// CPU per event barely does, and bounds what two idle cores could reach.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import pg from 'pg';
import type { UsageEvent } from '../src/metering/index.ts';
import { createMeteringService, createRecorder } from '../src/metering/index.ts';
import { createBenchDatabase } from './support.ts';
import { migrateToLatest } from '../src/platform/migrations.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    baseline: { type: 'string', default: '10000' },
    stored: { type: 'string', default: '10000000' },
    queries: { type: 'string', default: '200' },
    accounts: { type: 'string', default: '1000' },
    writers: { type: 'string' },
    batch: { type: 'string' },
  },
});
const EVENTS = Number(values.events);
const BASELINE = Number(values.baseline);
const STORED = Number(values.stored);
const QUERIES = Number(values.queries);
const ACCOUNTS = Number(values.accounts);
const recorderOptions = {
  ...(values.writers !== undefined ? { writers: Number(values.writers) } : {}),
  ...(values.batch !== undefined ? { batchSize: Number(values.batch) } : {}),
};

const bench = await createBenchDatabase();
const { database, log } = bench;
const url = new URL(bench.url);
const { db } = database;
const results: Record<string, string> = {};
// Each figure is printed as soon as it is measured (a long run still reports what it got).
const report = (label: string, line: string) => {
  results[label] = line;
  console.log(`${label.padEnd(9)} ${line}`);
};

// CPU ticks used so far by each server process serving the benchmark database, or null when
// /proc does not show them (a remote server).
const pgCpuTicks = async (): Promise<Map<number, number> | null> => {
  const backends = await sql<{ pid: number }>`
    select pid from pg_stat_activity where datname = current_database()`.execute(db);
  const ticks = new Map<number, number>();
  for (const { pid } of backends.rows) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ticks.set(pid, Number(fields[11]) + Number(fields[12])); // utime + stime
    } catch {
      return null;
    }
  }
  return ticks;
};
// Seconds of server CPU between two readings (100 clock ticks per second on Linux). A
// backend that exited in between is left out: only idle pool connections time out.
const pgCpuSecondsBetween = (
  before: Map<number, number> | null,
  after: Map<number, number> | null,
): number | null => {
  if (before === null || after === null) return null;
  let ticks = 0;
  for (const [pid, t] of after) ticks += t - (before.get(pid) ?? 0);
  return ticks / 100;
};

try {
  await migrateToLatest(db);
  const accounts = Array.from(
    { length: ACCOUNTS },
    (_, i) => `acct_bench${String(i).padStart(6, '0')}`,
  );
  await sql`insert into accounts (id, email) select unnest(${accounts}::text[]), unnest(${accounts}::text[]) || '@bench'`.execute(
    db,
  );

  const pipelines = [
    ['text-to-image', 'pixels'],
    ['llm', 'tokens'],
    ['audio-to-text', 'milliseconds'],
    ['upscale', 'pixels'],
    ['live-video-to-video', 'seconds'],
  ] as const;
  const monthStart = Date.UTC(2026, 9, 1);
  const makeEvent = (i: number, source: string): UsageEvent => {
    const [pipeline, unit] = pipelines[i % pipelines.length]!;
    return {
      source,
      eventId: `e${i}`,
      occurredAt: new Date(monthStart + ((i * 7919) % (30 * 24 * 3600)) * 1000),
      accountId: accounts[(i * 31) % accounts.length]!,
      appId: `app_${i % 7}`,
      keyId: `key_${i % 97}`,
      clientId: null,
      endUserId: i % 3 === 0 ? `user-${i % 1000}` : null,
      pipeline,
      modelId: `model-${i % 4}`,
      unit,
      quantity: BigInt(1_000 + (i % 1_000_000)),
      feeWei: 1_234_567_890_123n * BigInt(1 + (i % 1000)),
      status: i % 50 === 0 ? 502 : 200,
      latencyMs: 100 + (i % 900),
      attributes: { bytes: 1000 + (i % 5000) },
    };
  };

  // 1. Baseline: one INSERT per event into a plain table of the same shape (no rollups, no
  //    conflict handling): what a naive recorder would do.
  await sql`create table baseline_events (like usage_events including defaults)`.execute(db);
  await sql`alter table baseline_events drop column occurred_month`.execute(db);
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  let started = performance.now();
  for (let i = 0; i < BASELINE; i++) {
    const e = makeEvent(i, 'baseline');
    await client.query(
      `insert into baseline_events (source, event_id, occurred_at, account_id, app_id, key_id,
        client_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes)
       values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)`,
      [
        e.source,
        e.eventId,
        e.occurredAt,
        e.accountId,
        e.appId,
        e.keyId,
        e.clientId,
        e.endUserId,
        e.pipeline,
        e.modelId,
        e.unit,
        e.quantity.toString(),
        e.feeWei.toString(),
        e.status,
        e.latencyMs,
        JSON.stringify(e.attributes),
      ],
    );
  }
  const baselineRate = BASELINE / ((performance.now() - started) / 1000);
  await client.end();
  report(
    'baseline',
    `${Math.round(baselineRate).toLocaleString('en')} events/s (single-row INSERT, ${BASELINE.toLocaleString('en')} events)`,
  );

  // 2. Ingest through the recorder.
  const service = createMeteringService({ database, log });
  const events = Array.from({ length: EVENTS }, (_, i) => makeEvent(i, 'bench'));
  const run = async () => {
    const recorder = createRecorder({
      write: (batch) => service.record(batch),
      log,
      ...recorderOptions,
    });
    const pg0 = await pgCpuTicks();
    const node0 = process.cpuUsage();
    const t0 = performance.now();
    for (const e of events) await recorder.enqueue(e);
    await recorder.close();
    const seconds = (performance.now() - t0) / 1000;
    const node = process.cpuUsage(node0);
    const pgSeconds = pgCpuSecondsBetween(pg0, await pgCpuTicks());
    const nodeUs = (node.user + node.system) / EVENTS;
    const pgUs = pgSeconds === null ? null : (pgSeconds * 1e6) / EVENTS;
    const cpu =
      `CPU/event: Node ${nodeUs.toFixed(1)} µs` +
      (pgUs === null ? '' : `, PostgreSQL ${pgUs.toFixed(1)} µs`);
    return { rate: EVENTS / seconds, cpu };
  };
  const ingest = await run();
  report(
    'ingest',
    `${Math.round(ingest.rate).toLocaleString('en')} events/s through the recorder (${EVENTS.toLocaleString('en')} events, ${(ingest.rate / baselineRate).toFixed(1)}× baseline; ${ingest.cpu})`,
  );

  // 3. Replay: the same events again, all duplicates.
  const replay = await run();
  const stored = await sql<{ n: bigint }>`select count(*) as n from usage_events`.execute(db);
  if (stored.rows[0]!.n !== BigInt(EVENTS))
    throw new Error(`expected ${EVENTS} stored, found ${stored.rows[0]!.n}`);
  report(
    'replay',
    `${Math.round(replay.rate).toLocaleString('en')} events/s replaying stored events (${(replay.rate / baselineRate).toFixed(1)}× baseline; ${replay.cpu})`,
  );

  // 4. Usage totals with STORED events: bulk-generate the rest in SQL (same distribution),
  //    rebuild rollups from them, then time the per-account month query.
  const extra = Math.max(0, STORED - EVENTS);
  if (extra > 0) {
    started = performance.now();
    await sql`
      insert into usage_events (source, event_id, occurred_at, occurred_month, account_id, app_id,
        key_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes)
      select 'bulk', 'b' || g, ts, date_trunc('month', ts at time zone 'UTC')::date,
        'acct_bench' || lpad(((g * 31) % ${ACCOUNTS})::text, 6, '0'), 'app_' || (g % 7), 'key_' || (g % 97),
        case when g % 3 = 0 then 'user-' || (g % 1000) end,
        (array['text-to-image','llm','audio-to-text','upscale','live-video-to-video'])[1 + g % 5],
        'model-' || (g % 4),
        (array['pixels','tokens','milliseconds','pixels','seconds'])[1 + g % 5],
        1000 + g % 1000000, 1234567890123 * (1 + g % 1000), case when g % 50 = 0 then 502 else 200 end,
        100 + g % 900, '{}'::jsonb
      from generate_series(1::bigint, ${extra}::bigint) g,
        lateral (select timestamptz '2026-10-01 00:00:00+00' + ((g * 7919) % 2592000) * interval '1 second' as ts) t
    `.execute(db);
    await sql`truncate usage_rollups`.execute(db);
    await sql`
      insert into usage_rollups (hour, account_id, app_id, end_user_id, pipeline, model_id, unit, events, failed_events, quantity, fee_wei)
      select date_trunc('hour', occurred_at at time zone 'UTC') at time zone 'UTC', account_id,
        coalesce(app_id, ''), coalesce(end_user_id, ''), pipeline, coalesce(model_id, ''), unit,
        count(*), count(*) filter (where status >= 400), sum(quantity), sum(fee_wei)
      from usage_events group by 1, 2, 3, 4, 5, 6, 7`.execute(db);
    await sql`analyze`.execute(db);
    report(
      'load',
      `${(EVENTS + extra).toLocaleString('en')} events stored (${extra.toLocaleString('en')} bulk-generated in ${((performance.now() - started) / 1000).toFixed(0)} s)`,
    );
  }
  const rollupRows = await sql<{ n: bigint }>`select count(*) as n from usage_rollups`.execute(db);
  const principalFor = (accountId: string) => ({
    via: 'api_key' as const,
    accountId,
    appId: null,
    keyId: null,
    clientId: null,
    endUserId: null,
    scopes: ['usage:read' as const],
    allowedOrigins: null,
    allowedResources: null,
  });
  const timings: number[] = [];
  for (let q = 0; q < QUERIES; q++) {
    const t0 = performance.now();
    await service.summarize(
      principalFor(accounts[(q * 17) % accounts.length]!),
      { from: new Date(monthStart), to: new Date(Date.UTC(2026, 10, 1)) },
      ['day', 'pipeline'],
    );
    timings.push(performance.now() - t0);
  }
  timings.sort((a, b) => a - b);
  const pct = (p: number) =>
    timings[Math.min(timings.length - 1, Math.floor((p / 100) * timings.length))]!.toFixed(1);
  report(
    'query',
    `one account, one month, by day and pipeline: p50 ${pct(50)} ms, p95 ${pct(95)} ms, p99 ${pct(99)} ms over ${QUERIES} queries (${rollupRows.rows[0]!.n.toLocaleString('en')} rollup rows)`,
  );
} finally {
  await bench.drop();
}
