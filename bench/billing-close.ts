// Billing benchmark on real PostgreSQL.
//
//   node bench/billing-close.ts [--events 1000000] [--accounts 1000] [--checks 5000000]
//
// BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names a server; the
// benchmark creates its own database there and drops it at the end. In one run it measures:
//   1. baseline: `COPY (SELECT … the month's events …) TO STDOUT` (CSV) through pg-copy-streams,
//      bytes discarded — the cost of merely reading the rows out of PostgreSQL;
//   2. closing the month (one statement per account) and exporting its lines as CSV,
//      time and the process's peak RSS;
//   3. the spend gate: in-process `assertMaySpend` checks per second, beside a bare Map.get
//      loop over the same principals.
import { createOutbox } from '../src/notifications/outbox.ts';
import { systemClock } from '../src/platform/clock.ts';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { createBilling, exportMonth } from '../src/billing/index.ts';
import { createDirectory } from '../src/identity/index.ts';
import { createUsageReads } from '../src/metering/index.ts';
import { createAuthenticator } from '../src/platform/auth.ts';
import type { Principal } from '../src/platform/auth.ts';
import { createBenchDatabase } from './support.ts';
import { migrateToLatest } from '../src/platform/migrations.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    accounts: { type: 'string', default: '1000' },
    checks: { type: 'string', default: '5000000' },
  },
});
const EVENTS = Number(values.events);
const ACCOUNTS = Number(values.accounts);
const CHECKS = Number(values.checks);
const MONTH = '2026-10';

const bench = await createBenchDatabase();
const { database, log } = bench;
const url = new URL(bench.url);
const { db } = database;
const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;
const rssMb = () => `${(process.memoryUsage().rss / 1024 / 1024).toFixed(0)} MB`;

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

  // 1. Baseline: COPY the month's rows out as CSV.
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  const copySink = sink();
  started = performance.now();
  await pipeline(
    client.query(
      copyTo(`copy (select account_id, pipeline, model_id, unit, quantity, fee_wei from usage_events
        where occurred_month = '2026-10-01') to stdout with (format csv, header)`),
    ),
    copySink.stream,
  );
  const copyMs = performance.now() - started;
  await client.end();
  console.log(
    `baseline COPY … TO STDOUT: ${(copyMs / 1000).toFixed(2)} s, ${(copySink.bytes() / 1e6).toFixed(0)} MB, rss ${rssMb()}`,
  );

  // 2. Close + CSV export.
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
  const rssBefore = process.resourceUsage().maxRSS;
  started = performance.now();
  const closed = await billing.service.closeMonth(MONTH);
  const closeMs = performance.now() - started;
  const csvSink = sink();
  const exportStarted = performance.now();
  await pipeline(exportMonth(db, MONTH, 'csv'), csvSink.stream);
  const exportMs = performance.now() - exportStarted;
  const peak = process.resourceUsage().maxRSS;
  const total = closeMs + exportMs;
  console.log(
    `close: ${closed.statements} statements in ${(closeMs / 1000).toFixed(2)} s; CSV export ${(csvSink.bytes() / 1e6).toFixed(2)} MB in ${(exportMs / 1000).toFixed(2)} s`,
  );
  console.log(
    `close + export: ${(total / 1000).toFixed(2)} s (${(total / copyMs).toFixed(2)}× the COPY baseline); peak RSS ${mb(peak)} (${mb(rssBefore)} before the close)`,
  );

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
  let hits = 0;
  started = performance.now();
  for (let i = 0; i < CHECKS; i++)
    if (map.get(principals[i % ACCOUNTS]!.accountId) !== undefined) hits++;
  const mapMs = performance.now() - started;
  let refused = 0;
  started = performance.now();
  for (let i = 0; i < CHECKS; i++) {
    try {
      billing.spendGate.assertMaySpend(principals[i % ACCOUNTS]!);
    } catch {
      refused++;
    }
  }
  const gateMs = performance.now() - started;
  // Admitted principals only (the fast path; a refusal builds an error with a stack).
  const admitted = principals.filter((_, i) => i % 2 === 0);
  started = performance.now();
  for (let i = 0; i < CHECKS; i++) billing.spendGate.assertMaySpend(admitted[i % admitted.length]!);
  const okMs = performance.now() - started;
  const rate = (ms: number) => Math.round(CHECKS / (ms / 1000));
  console.log(`baseline Map.get: ${rate(mapMs).toLocaleString()}/s (${hits} hits)`);
  console.log(
    `assertMaySpend, all admitted: ${rate(okMs).toLocaleString()}/s (${(rate(okMs) / rate(mapMs)).toFixed(2)}× baseline)`,
  );
  console.log(
    `assertMaySpend, half refused (402 thrown): ${rate(gateMs).toLocaleString()}/s, ${refused.toLocaleString()} refused`,
  );
  await billing.close();
} finally {
  await bench.drop();
}
