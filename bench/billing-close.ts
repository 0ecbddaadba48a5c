// Billing benchmark on real PostgreSQL.
//
//   node bench/billing-close.ts [--events 1000000] [--accounts 1000] [--checks 5000000]
//
// BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names a server; the
// benchmark creates its own database there and drops it at the end. In one run it measures:
//   1. closing the month (one statement per account): its time, and its own RSS growth — the
//      process's peak RSS after the close minus the peak before it, taken once the app's
//      modules are imported and the billing capability is built (they cost ~170 MB alone);
//   2. `billing export-usage` of the month's raw events (JSON Lines) against
//      `COPY (SELECT … the same rows …) TO STDOUT` through pg-copy-streams, bytes discarded —
//      the cost of merely reading those rows out of PostgreSQL — taking turns (COPY, export,
//      export, COPY);
//      With --baseline DIR, DIR's export-usage (another checkout's src/, e.g. a `git worktree`
//      of main sharing node_modules) is measured in the same turns on the same rows.
//   3. the spend gate: in-process `assertMaySpend` checks per second, beside a bare Map.get
//      loop over the same principals.
import { createOutbox } from '../src/notifications/outbox.ts';
import { systemClock } from '../src/platform/clock.ts';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { createBilling, exportUsage } from '../src/billing/index.ts';
import { createDirectory } from '../src/identity/index.ts';
import { createUsageReads } from '../src/metering/index.ts';
import { createAuthenticator } from '../src/platform/auth.ts';
import type { Principal } from '../src/platform/auth.ts';
import { startReport } from './report.ts';
import { createBenchDatabase } from './support.ts';
import { migrateToLatest } from '../src/platform/migrations.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    accounts: { type: 'string', default: '1000' },
    checks: { type: 'string', default: '5000000' },
    baseline: { type: 'string' },
  },
});
const EVENTS = Number(values.events);
const ACCOUNTS = Number(values.accounts);
const CHECKS = Number(values.checks);
const MONTH = '2026-10';

const report = startReport('billing');
const bench = await createBenchDatabase();
const { database, log } = bench;
const url = new URL(bench.url);
const { db } = database;
const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;

function sink() {
  let bytes = 0;
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      done();
    },
  });
  return { stream, bytes: () => bytes };
}

try {
  await migrateToLatest(db);
  const accounts = Array.from(
    { length: ACCOUNTS },
    (_, i) => `acct_bench${String(i).padStart(6, '0')}`,
  );
  await sql`insert into accounts (id, email) select unnest(${accounts}::text[]), unnest(${accounts}::text[]) || '@bench'`.execute(
    db,
  );
  await sql`create table usage_events_y2026m10 partition of usage_events for values from ('2026-10-01') to ('2026-11-01')`.execute(
    db,
  );
  // 1M events generated in SQL: 8 pipeline/model/unit combinations, fees up to ~1e15 wei.
  let started = performance.now();
  await sql`
    insert into usage_events (source, event_id, occurred_at, occurred_month, recorded_at, account_id,
      pipeline, model_id, unit, quantity, fee_wei, status, latency_ms)
    select 'bench', 'e' || g, ts, '2026-10-01', '2026-10-31T23:00:00Z',
      'acct_bench' || lpad((g % ${ACCOUNTS})::text, 6, '0'),
      (array['text-to-image','image-to-image','llm','audio-to-text'])[1 + g % 4],
      (array['sdxl','flux'])[1 + (g / 4) % 2],
      (array['pixels','pixels','tokens','milliseconds'])[1 + g % 4],
      (1 + g % 100000)::numeric, ((g::numeric * 7919) % 1000000000000000)::numeric, 200, 10
    from (select g, '2026-10-01'::timestamptz + (g % 2592000) * interval '1 second' as ts
          from generate_series(1, ${EVENTS}) g) s`.execute(db);
  await sql`analyze usage_events`.execute(db);
  console.log(
    `generated ${EVENTS.toLocaleString()} events in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );

  const billing = createBilling({
    database,
    usage: createUsageReads(database.db),
    directory: createDirectory(database.db),
    log,
    events: createOutbox({ clock: systemClock }),
    authenticator: createAuthenticator([]),
    config: {
      rates: { fixed: '3150.25', feedAddress: null, rpcUrl: null, maxAgeSeconds: 3600 },
      stripe: {
        secretKey: null,
        webhookSecret: null,
        apiBase: null,
        finalize: false,
        daysUntilDue: 30,
      },
      spendRefreshMs: 3_600_000,
      spendFullReloadMs: 3_600_000,
      closeAfterMs: null,
      jobIntervalMs: 3_600_000,
    },
  });

  // 1. The close, first: nothing else has raised the peak RSS since the imports.
  const rssBefore = process.resourceUsage().maxRSS;
  started = performance.now();
  const closed = await billing.service.closeMonth(MONTH);
  const closeMs = performance.now() - started;
  const closeGrowth = process.resourceUsage().maxRSS - rssBefore;
  report.target({
    target: `month close, own RSS growth ÷ 64 MB budget`,
    ratio: closeGrowth / 1024 / 64,
    goal: { op: '<=', limit: 1 },
    detail: `+${mb(closeGrowth)} over ${mb(rssBefore)} after imports; ${closed.statements} statements in ${(closeMs / 1000).toFixed(2)} s, ${EVENTS.toLocaleString('en')} events`,
  });

  // 2. export-usage against COPY of the same rows, in turns.
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  const copy = async () => {
    const out = sink();
    const t0 = performance.now();
    await pipeline(
      client.query(
        copyTo(`copy (select id, source, event_id, occurred_at, recorded_at, account_id, app_id,
          key_id, client_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status,
          latency_ms, attributes from usage_events
          where occurred_at >= '2026-10-01T00:00:00Z' and occurred_at < '2026-11-01T00:00:00Z'
          order by occurred_at, id) to stdout with (format csv)`),
      ),
      out.stream,
    );
    return { ms: performance.now() - t0, bytes: out.bytes() };
  };
  const usage = createUsageReads(database.db);
  const exported = async () => {
    const out = sink();
    const t0 = performance.now();
    await pipeline(exportUsage(usage, MONTH), out.stream);
    return { ms: performance.now() - t0, bytes: out.bytes() };
  };
  const before =
    values.baseline === undefined
      ? null
      : await (async () => {
          const root = pathToFileURL(`${path.resolve(values.baseline!)}/`);
          const b = (await import(new URL('src/billing/index.ts', root).href)) as {
            exportUsage: typeof exportUsage;
          };
          const m = (await import(new URL('src/metering/index.ts', root).href)) as {
            createUsageReads: typeof createUsageReads;
          };
          const reads = m.createUsageReads(database.db);
          return async () => {
            const out = sink();
            const t0 = performance.now();
            await pipeline(b.exportUsage(reads, MONTH), out.stream);
            return { ms: performance.now() - t0, bytes: out.bytes() };
          };
        })();
  const c1 = await copy();
  const e1 = await exported();
  const b1 = before === null ? null : await before();
  const b2 = before === null ? null : await before();
  const e2 = await exported();
  const c2 = await copy();
  await client.end();
  const copyMs = c1.ms + c2.ms;
  const exportMs = e1.ms + e2.ms;
  report.target({
    target: 'billing export-usage time ÷ COPY … TO STDOUT of the same rows',
    ratio: exportMs / copyMs,
    goal: { op: '<=', limit: 3 },
    detail: `${(exportMs / 2000).toFixed(2)} s (${(e1.bytes / 1e6).toFixed(0)} MB JSON Lines) vs ${(copyMs / 2000).toFixed(2)} s (${(c1.bytes / 1e6).toFixed(0)} MB CSV)`,
  });
  if (b1 !== null && b2 !== null) {
    if (b1.bytes !== e1.bytes)
      throw new Error(`--baseline exported ${b1.bytes} bytes, this tree ${e1.bytes}`);
    report.target({
      target: 'export-usage time ÷ --baseline checkout',
      ratio: exportMs / (b1.ms + b2.ms),
      goal: null,
      detail: `${(exportMs / 2000).toFixed(2)} s vs ${((b1.ms + b2.ms) / 2000).toFixed(2)} s; baseline ÷ COPY ${((b1.ms + b2.ms) / copyMs).toFixed(2)}×`,
    });
  }

  // 3. Spend gate: caps on every account, half of them reached.
  for (let i = 0; i < ACCOUNTS; i++) {
    await db
      .insertInto('spend_caps')
      .values({
        account_id: accounts[i]!,
        app_id: '',
        end_user_id: '',
        monthly_cap_wei: i % 2 ? '1' : '10000000000000000000000000',
      })
      .execute();
  }
  await sql`insert into usage_rollups (hour, account_id, pipeline, unit, events, failed_events, quantity, fee_wei)
    select date_trunc('hour', now()), id, 'llm', 'tokens', 1, 0, 1, 1000 from accounts`.execute(db);
  await billing.spendGate.reload();
  const principals: Principal[] = accounts.map((accountId, i) => ({
    via: 'api_key',
    accountId,
    appId: i % 3 ? `app_${i}` : null,
    keyId: null,
    clientId: null,
    endUserId: i % 5 ? null : `user_${i}`,
    scopes: ['gateway'],
    allowedOrigins: null,
    allowedResources: null,
  }));
  const map = new Map(accounts.map((a) => [a, 1n]));
  // Per CPU-second of this thread: a loop's wall time on a shared machine is mostly
  // preemption.
  const threadMs = () => {
    const u = process.threadCpuUsage();
    return (u.user + u.system) / 1000;
  };
  let hits = 0;
  started = threadMs();
  for (let i = 0; i < CHECKS; i++)
    if (map.get(principals[i % ACCOUNTS]!.accountId) !== undefined) hits++;
  const mapMs = threadMs() - started;
  let refused = 0;
  started = threadMs();
  for (let i = 0; i < CHECKS; i++) {
    try {
      billing.spendGate.assertMaySpend(principals[i % ACCOUNTS]!);
    } catch {
      refused++;
    }
  }
  const gateMs = threadMs() - started;
  // Admitted principals only (the fast path; a refusal builds an error with a stack).
  const admitted = principals.filter((_, i) => i % 2 === 0);
  started = threadMs();
  for (let i = 0; i < CHECKS; i++) billing.spendGate.assertMaySpend(admitted[i % admitted.length]!);
  const okMs = threadMs() - started;
  const rate = (ms: number) => Math.round(CHECKS / (ms / 1000));
  if (hits === 0) throw new Error('no Map hits');
  report.target({
    target: 'spend gate, admitted checks ÷ bare Map.get loop',
    ratio: rate(okMs) / rate(mapMs),
    goal: { op: '>=', limit: 0.25 },
    detail: `${rate(okMs).toLocaleString('en')} vs ${rate(mapMs).toLocaleString('en')} per CPU-second; half refused (402 thrown): ${rate(gateMs).toLocaleString('en')} /s, ${refused.toLocaleString('en')} refused`,
  });
  await billing.close();
} finally {
  await bench.drop();
}
report.finish();
