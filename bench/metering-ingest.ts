// Metering on real PostgreSQL: ingest over HTTP against COPY, and the usage query under load.
//
//   node bench/metering-ingest.ts [--events 200000] [--connections 4] [--batch 1000]
//                                 [--stored 0] [--copy-stored 0] [--queries 400] [--accounts 1000]
//
// BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names a server; the
// bench creates its own database there and drops it at the end. The app runs in this process
// (`startServer`); the clients run in processes of their own (bench/load.ts). In one run:
//   1. ingest: POST /v1/usage/events, `--batch`-event batches from `--connections` clients,
//      each event stored with its rollup upsert, acknowledged after commit; against COPY of
//      the same events (same distribution, another source) into the same table, its indexes
//      included. They take turns (COPY, HTTP, HTTP, COPY), a quarter of `--events` each.
//      CPU per event of this process and of the PostgreSQL backends is printed beside.
//   2. `--stored N`: more events through the recorder's own path (`service.record`, 1,000 at
//      a time, in process), so the rollups are the ones its upserts maintain.
//   3. query: GET /v1/usage for one account-month by day and pipeline, 4 clients at once, p95
//      against the 100 ms budget (issue #21).
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { createApp } from '../src/app.ts';
import { parseConfig } from '../src/config.ts';
import { CLI_CALLER } from '../src/keys/index.ts';
import type { UsageEvent } from '../src/metering/index.ts';
import { createMeteringService } from '../src/metering/index.ts';
import { startServer } from '../src/platform/server.ts';
import { migrateToLatest } from '../src/platform/migrations.ts';
import { recordedEvent, runLoad, usageEvent } from './load.ts';
import { startReport } from './report.ts';
import { createBenchDatabase, postgresCpu, profileWindow } from './support.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    connections: { type: 'string', default: '4' },
    batch: { type: 'string', default: '1000' },
    stored: { type: 'string', default: '0' },
    'copy-stored': { type: 'string', default: '0' },
    queries: { type: 'string', default: '400' },
    accounts: { type: 'string', default: '1000' },
  },
});
const EVENTS = Number(values.events);
const CONNECTIONS = Number(values.connections);
const BATCH = Number(values.batch);
const STORED = Number(values.stored);
const COPY_STORED = Number(values['copy-stored']);
const QUERIES = Number(values.queries);
const ACCOUNTS = Number(values.accounts);
const report = startReport('metering');

const bench = await createBenchDatabase();
const { database, log } = bench;
const { db } = database;
try {
  await migrateToLatest(db);
  const accounts = Array.from(
    { length: ACCOUNTS },
    (_, i) => `acct_bench${String(i).padStart(6, '0')}`,
  );
  await sql`insert into accounts (id, email) select unnest(${accounts}::text[]), unnest(${accounts}::text[]) || '@bench'`.execute(
    db,
  );
  const config = parseConfig({
    TOLLHOUSE_SECRET: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'silent',
    HOST: '127.0.0.1',
    DATABASE_URL: bench.url,
    TOLLHOUSE_DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'bench-metering-')),
  });
  const app = await createApp({ config, log, database });
  const { secret } = await app.keys.service.create(CLI_CALLER, {
    accountId: accounts[0]!,
    kind: 'backend',
    name: 'bench operator',
    scopes: ['admin', 'usage:write', 'usage:read'],
  });
  const authorization = `Bearer ${secret}`;
  const server = await startServer(app.handler, {
    host: '127.0.0.1',
    port: 0,
    shutdownTimeoutMs: 2_000,
    log,
  });
  const origin = `http://127.0.0.1:${server.port}`;
  let offset = 0;
  const ingest = async (count: number) => {
    const batches = Math.ceil(count / BATCH);
    const cpu = process.cpuUsage();
    const pgUsed = await postgresCpu(bench.name);
    const result = await runLoad({
      origin,
      connections: CONNECTIONS,
      count: batches,
      usage: {
        path: '/v1/usage/events',
        authorization,
        accounts,
        batch: BATCH,
        offset,
        source: 'http',
      },
    });
    offset += batches * BATCH;
    if (result.errors > 0) throw new Error(`ingest: ${result.errors} errors, ${result.firstError}`);
    const used = process.cpuUsage(cpu);
    return {
      events: batches * BATCH,
      seconds: result.seconds,
      nodeCpu: (used.user + used.system) / 1e6,
      clientCpu: result.cpuMicros / 1e6,
      pgCpu: await pgUsed(),
    };
  };

  // COPY: the same events as CSV, built before the clock starts (only PostgreSQL's work is
  // timed), written into usage_events — the same table, indexes and partition.
  const copyClient = new pg.Client({ connectionString: bench.url });
  copyClient.on('error', (error) => process.stderr.write(`COPY connection: ${String(error)}\n`));
  await copyClient.connect();
  const csvField = (v: string | number | null | undefined) =>
    v === null || v === undefined ? '' : `"${String(v).replaceAll('"', '""')}"`;
  let copyOffset = 0;
  const copyRows = async (source: string, first: number, count: number, table = 'usage_events') => {
    const lines: string[] = [];
    for (let i = first; i < first + count; i++) {
      const e = usageEvent(i, source, accounts);
      lines.push(
        [
          e.source,
          e.id,
          e.time,
          `${e.time.slice(0, 7)}-01`,
          e.subject,
          e.data.app_id,
          e.data.key_id,
          e.data.end_user_id,
          e.data.pipeline,
          e.data.model_id,
          e.data.unit,
          e.data.quantity,
          e.data.fee_wei,
          e.data.status,
          e.data.latency_ms,
          JSON.stringify(e.data.attributes),
        ]
          .map(csvField)
          .join(','),
      );
    }
    const text = `${lines.join('\n')}\n`;
    const pgUsed = await postgresCpu(bench.name);
    const started = performance.now();
    await pipeline(
      Readable.from([text]),
      copyClient.query(
        copyFrom(`copy ${table} (source, event_id, occurred_at, occurred_month, account_id,
          app_id, key_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status,
          latency_ms, attributes) from stdin with (format csv)`),
      ),
    );
    return { events: count, seconds: (performance.now() - started) / 1000, pgCpu: await pgUsed() };
  };
  const copy = async (count: number) => {
    const result = await copyRows('copy', copyOffset, count);
    copyOffset += count;
    return result;
  };

  // Warm-up: JIT, pools, the month's partition.
  await ingest(CONNECTIONS * BATCH);
  const quarter = Math.ceil(EVENTS / 4 / BATCH) * BATCH;
  const c1 = await copy(quarter);
  const stopProfile = await profileWindow();
  const h1 = await ingest(quarter);
  const h2 = await ingest(quarter);
  await stopProfile();
  const c2 = await copy(quarter);

  // `--copy-stored N`: N more events by COPY, then their rollups built by the recorder's own
  // upsert (the same INSERT … GROUP BY … ON CONFLICT DO UPDATE, per chunk) — the quick way to
  // 10 M events; `--stored` goes through service.record and takes hours on a loaded host.
  // Caveat: a 250,000-event chunk writes each account's rollup rows next to each other, where
  // 1,000-event batches scatter them over the heap, so the query reads fewer pages than it
  // would after the recorder's writes: `--stored` is the faithful (slow) layout.
  if (COPY_STORED > 0) {
    const started = performance.now();
    const CHUNK = 250_000;
    await sql`create unlogged table bench_stage (like usage_events including defaults)`.execute(db);
    for (let first = 0; first < COPY_STORED; first += CHUNK) {
      const count = Math.min(CHUNK, COPY_STORED - first);
      await copyRows('stored', first, count, 'bench_stage');
      await sql`insert into usage_events (source, event_id, occurred_at, occurred_month, account_id,
        app_id, key_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status,
        latency_ms, attributes)
        select source, event_id, occurred_at, occurred_month, account_id, app_id, key_id,
          end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes
        from bench_stage`.execute(db);
      await sql`
        insert into usage_rollups (hour, account_id, app_id, end_user_id, pipeline, model_id, unit,
          events, failed_events, quantity, fee_wei)
        select date_trunc('hour', occurred_at at time zone 'UTC') at time zone 'UTC' as hour,
          account_id, coalesce(app_id, ''), coalesce(end_user_id, ''), pipeline,
          coalesce(model_id, ''), unit,
          count(*), count(*) filter (where status >= 400), sum(quantity), sum(fee_wei)
        from bench_stage
        group by 1, 2, 3, 4, 5, 6, 7
        order by 2, 1, 3, 4, 5, 6, 7
        on conflict (account_id, hour, app_id, end_user_id, pipeline, model_id, unit) do update set
          events = usage_rollups.events + excluded.events,
          failed_events = usage_rollups.failed_events + excluded.failed_events,
          quantity = usage_rollups.quantity + excluded.quantity,
          fee_wei = usage_rollups.fee_wei + excluded.fee_wei`.execute(db);
      await sql`truncate bench_stage`.execute(db);
      process.stdout.write(
        `copied ${(first + count).toLocaleString('en')} events and folded their rollups (${((performance.now() - started) / 1000).toFixed(0)} s, load ${os.loadavg()[0]!.toFixed(1)})\n`,
      );
    }
    await sql`drop table bench_stage`.execute(db);
    await sql`analyze usage_events`.execute(db);
    await sql`analyze usage_rollups`.execute(db);
  }
  await copyClient.end();
  const httpRate = (h1.events + h2.events) / (h1.seconds + h2.seconds);
  const copyRate = (c1.events + c2.events) / (c1.seconds + c2.seconds);
  const httpNodeUs = ((h1.nodeCpu + h2.nodeCpu) * 1e6) / (h1.events + h2.events);
  const httpPgUs = ((h1.pgCpu + h2.pgCpu) * 1e6) / (h1.events + h2.events);
  const copyPgUs = ((c1.pgCpu + c2.pgCpu) * 1e6) / (c1.events + c2.events);
  const httpClientUs = ((h1.clientCpu + h2.clientCpu) * 1e6) / (h1.events + h2.events);
  report.target({
    target: `ingest over HTTP (${BATCH}-event batches, ${CONNECTIONS} clients) ÷ COPY`,
    ratio: httpRate / copyRate,
    goal: { op: '>=', limit: 0.5 },
    detail: `${Math.round(httpRate).toLocaleString('en')} vs ${Math.round(copyRate).toLocaleString('en')} events/s; CPU/event: Node ${httpNodeUs.toFixed(1)} µs + PostgreSQL ${httpPgUs.toFixed(1)} µs vs COPY PostgreSQL ${copyPgUs.toFixed(1)} µs; HTTP client ${httpClientUs.toFixed(1)} µs`,
  });

  // More events through the recorder's own write path, so the query sees its rollups.
  if (STORED > 0) {
    const service = createMeteringService({ database, log });
    const started = performance.now();
    for (let first = 0; first < STORED; first += 1000) {
      const batch: UsageEvent[] = [];
      for (let i = first; i < Math.min(STORED, first + 1000); i++) {
        batch.push(recordedEvent(i, 'stored', accounts));
      }
      await service.record(batch);
    }
    process.stdout.write(
      `stored ${STORED.toLocaleString('en')} more events through service.record in ${((performance.now() - started) / 1000).toFixed(0)} s\n`,
    );
  }
  const counts = await sql<{ events: string; rollups: string }>`
    select (select count(*) from usage_events)::text as events,
      (select count(*) from usage_rollups)::text as rollups`.execute(db);
  const { events: storedEvents, rollups } = counts.rows[0]!;

  const queries = accounts.slice(0, 200).map((account) => ({
    method: 'GET' as const,
    path: `/v1/usage?account_id=${account}&from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z&group_by=day,pipeline`,
    headers: { authorization },
  }));
  await runLoad({ origin, connections: 4, count: 40, requests: queries });
  const q = await runLoad({ origin, connections: 4, count: QUERIES, requests: queries });
  if (q.errors > 0) throw new Error(`query: ${q.errors} errors, ${q.firstError}`);
  report.target({
    target: `GET /v1/usage p95, 4 clients ÷ 100 ms budget`,
    ratio: q.p95 / 100,
    goal: { op: '<=', limit: 1 },
    detail: `p50 ${q.p50.toFixed(1)} ms, p95 ${q.p95.toFixed(1)} ms, p99 ${q.p99.toFixed(1)} ms; ${Number(storedEvents).toLocaleString('en')} events, ${Number(rollups).toLocaleString('en')} rollup rows`,
  });
  await server.close();
  await app.close();
} finally {
  await bench.drop();
}
report.finish();
