// Metering's write path, option by option, in PostgreSQL CPU per event (issue #21): how a batch
// of 1,000 events reaches usage_events and usage_rollups, against COPY of the same events into
// the same table. One connection, batches taking turns; the median of `ROUNDS` batches of the
// backend's own CPU (/proc/<pid>/schedstat), which moves less with load than wall time.
//
//   ROUNDS=12 [VARIANTS=copy,arrays,json,…] [DDL='drop index …;…'] node bench/metering-write-options.ts
//
//   copy                 COPY (CSV) of the events alone: the baseline
//   arrays               the recorder's statement before issue #21: sixteen text[] parameters
//                        through unnest, rollups in the same statement
//   json                 the same statement with the batch as one jsonb parameter (the recorder's now)
//   recordset            the same with json_to_recordset over objects
//   events_arrays        the events alone, text[] parameters
//   rollups_node         the rollups alone, folded in Node, one upsert of the folded rows
//   json_events          the jsonb statement without the rollups
//   stage_copy           COPY into a temp table, then the recorder's insert + rollups from it
//   accounts_in          the ingest route's account check as an IN list (one parameter per id)
//   accounts_any         the same as `= any(text[])` (the route's now)
//   copy_then_rollups    COPY of the events, then the rollups folded in Node, one transaction
//   arrays_then_rollups  the events by text[] parameters, then the folded rollups
// MIX=steady: repeated rollup keys (updates) instead of the default spread (inserts).
// DDL runs first (e.g. dropping the rollups' secondary indexes to price them).
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { sql } from 'kysely';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { migrateToLatest } from '../src/platform/migrations.ts';
import type { UsageEvent } from '../src/metering/index.ts';
import { recordedEvent } from './load.ts';
import { createBenchDatabase } from './support.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 12);
const bench = await createBenchDatabase();
const { db } = bench.database;
const accounts = Array.from({ length: 1000 }, (_, i) => `acct_bench${String(i).padStart(6, '0')}`);
let next = 0;
// MIX=steady: every event falls in one of 100 rollup rows of one hour (100 accounts, one app,
// pipeline and model each), so after the first batch every rollup write is an update — the
// steady state of a busy hour, where the default mix makes nearly every rollup row new.
const STEADY = process.env.MIX === 'steady';
const HOUR = Date.UTC(2026, 9, 15, 10);
const batchOf = (source: string): UsageEvent[] => {
  const out: UsageEvent[] = [];
  for (let i = next; i < next + 1000; i++) {
    const e = recordedEvent(i, source, accounts);
    if (STEADY) {
      e.accountId = accounts[i % 100]!;
      e.occurredAt = new Date(HOUR + (i % 3600) * 1000);
      e.appId = 'app_1';
      e.endUserId = null;
      e.modelId = 'model-0';
    }
    out.push(e);
  }
  next += 1000;
  return out;
};
const csvField = (v: unknown) =>
  v === null || v === undefined ? '' : `"${String(v).replaceAll('"', '""')}"`;
const csv = (events: UsageEvent[]) =>
  events
    .map((e) =>
      [
        e.source,
        e.eventId,
        e.occurredAt.toISOString(),
        `${e.occurredAt.toISOString().slice(0, 7)}-01`,
        e.accountId,
        e.appId,
        e.keyId,
        e.endUserId,
        e.pipeline,
        e.modelId,
        e.unit,
        e.quantity,
        e.feeWei,
        e.status,
        e.latencyMs,
        JSON.stringify(e.attributes),
      ]
        .map(csvField)
        .join(','),
    )
    .join('\n') + '\n';
const COPY = `copy usage_events (source, event_id, occurred_at, occurred_month, account_id,
          app_id, key_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes) from stdin with (format csv)`;
const ROLL = `on conflict (account_id, hour, app_id, end_user_id, pipeline, model_id, unit) do update set events = usage_rollups.events + excluded.events,
        failed_events = usage_rollups.failed_events + excluded.failed_events, quantity = usage_rollups.quantity + excluded.quantity, fee_wei = usage_rollups.fee_wei + excluded.fee_wei`;
interface Folded {
  h: string;
  a: string;
  ap: string;
  eu: string;
  p: string;
  mo: string;
  u: string;
  n: number;
  f: number;
  q: bigint;
  w: bigint;
}
const foldNode = (events: UsageEvent[]) => {
  const m = new Map<string, Folded>();
  for (const e of events) {
    const h = new Date(Math.floor(e.occurredAt.getTime() / 3600000) * 3600000).toISOString();
    const k = `${e.accountId}\0${h}\0${e.appId ?? ''}\0${e.endUserId ?? ''}\0${e.pipeline}\0${e.modelId ?? ''}\0${e.unit}`;
    let r = m.get(k);
    if (!r)
      m.set(
        k,
        (r = {
          h,
          a: e.accountId,
          ap: e.appId ?? '',
          eu: e.endUserId ?? '',
          p: e.pipeline,
          mo: e.modelId ?? '',
          u: e.unit,
          n: 0,
          f: 0,
          q: 0n,
          w: 0n,
        }),
      );
    r.n++;
    if ((e.status ?? 0) >= 400) r.f++;
    r.q += e.quantity;
    r.w += e.feeWei;
  }
  return [...m.values()].sort((x, y) =>
    x.a < y.a ? -1 : x.a > y.a ? 1 : x.h < y.h ? -1 : x.h > y.h ? 1 : 0,
  );
};
const rollupSql = (rows: Folded[]) =>
  sql`insert into usage_rollups (hour, account_id, app_id, end_user_id, pipeline, model_id, unit, events, failed_events, quantity, fee_wei)
      select h::timestamptz, a, ap, eu, p, mo, u, n::bigint, f::bigint, q::numeric, w::numeric from unnest(${rows.map((r) => r.h)}::text[], ${rows.map((r) => r.a)}::text[],
      ${rows.map((r) => r.ap)}::text[], ${rows.map((r) => r.eu)}::text[], ${rows.map((r) => r.p)}::text[], ${rows.map((r) => r.mo)}::text[], ${rows.map((r) => r.u)}::text[],
      ${rows.map((r) => String(r.n))}::text[], ${rows.map((r) => String(r.f))}::text[], ${rows.map((r) => r.q.toString())}::text[], ${rows.map((r) => r.w.toString())}::text[])
      as t(h, a, ap, eu, p, mo, u, n, f, q, w) order by a, h ${sql.raw(ROLL)}`.compile(db);
const unnestEvents = (events: UsageEvent[], tail: string) => {
  const col = <T>(pick: (e: UsageEvent) => T) => events.map(pick);
  const text = (v: string | number | null) => (v === null ? null : String(v));
  return sql`with input as (select * from unnest(${col((e) => e.source)}::text[], ${col((e) => e.eventId)}::text[], ${col((e) => e.occurredAt.toISOString())}::text[], ${col((e) => e.accountId)}::text[],
        ${col((e) => e.appId)}::text[], ${col((e) => e.keyId)}::text[], ${col((e) => e.clientId)}::text[], ${col((e) => e.endUserId)}::text[], ${col((e) => e.pipeline)}::text[],
        ${col((e) => e.modelId)}::text[], ${col((e) => e.unit)}::text[], ${col((e) => e.quantity.toString())}::text[], ${col((e) => e.feeWei.toString())}::text[],
        ${col((e) => text(e.status))}::text[], ${col((e) => text(e.latencyMs))}::text[], ${col((e) => JSON.stringify(e.attributes))}::text[])
        as t(source, event_id, occurred_at, account_id, app_id, key_id, client_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes)),
      inserted as (insert into usage_events (source, event_id, occurred_at, occurred_month, account_id, app_id,
        key_id, client_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes)
        select source, event_id, occurred_at::timestamptz, date_trunc('month', occurred_at::timestamptz at time zone 'UTC')::date,
        account_id, app_id, key_id, client_id, end_user_id, pipeline, model_id, unit, quantity::numeric, fee_wei::numeric, status::integer, latency_ms::integer, attributes::jsonb
        from input returning source, event_id, occurred_at, account_id, app_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status) ${sql.raw(tail)}`.compile(
    db,
  );
};
const jsonEvents = (events: UsageEvent[], tail: string) => {
  const payload = JSON.stringify(
    events.map((e) => [
      e.source,
      e.eventId,
      e.occurredAt.toISOString(),
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
      e.attributes,
    ]),
  );
  return sql`with inserted as (insert into usage_events (source, event_id, occurred_at, occurred_month, account_id, app_id,
        key_id, client_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes)
        select r->>0, r->>1, (r->>2)::timestamptz, date_trunc('month', (r->>2)::timestamptz at time zone 'UTC')::date, r->>3, r->>4, r->>5, r->>6, r->>7, r->>8, r->>9, r->>10,
          (r->>11)::numeric, (r->>12)::numeric, (r->>13)::integer, (r->>14)::integer, r->15
        from jsonb_array_elements(${payload}::jsonb) r returning source, event_id, occurred_at, account_id, app_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status) ${sql.raw(tail)}`.compile(
    db,
  );
};
const recEvents = (events: UsageEvent[], tail: string) => {
  const payload = JSON.stringify(
    events.map((e) => ({
      s: e.source,
      e: e.eventId,
      t: e.occurredAt.toISOString(),
      a: e.accountId,
      ap: e.appId,
      k: e.keyId,
      c: e.clientId,
      u: e.endUserId,
      p: e.pipeline,
      m: e.modelId,
      un: e.unit,
      q: e.quantity.toString(),
      f: e.feeWei.toString(),
      st: e.status,
      l: e.latencyMs,
      at: e.attributes,
    })),
  );
  return sql`with inserted as (insert into usage_events (source, event_id, occurred_at, occurred_month, account_id, app_id,
        key_id, client_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes)
        select s, e, t, date_trunc('month', t at time zone 'UTC')::date, a, ap, k, c, u, p, m, un, q, f, st, l, coalesce(at, '{}')
        from json_to_recordset(${payload}::json) as r(s text, e text, t timestamptz, a text, ap text, k text, c text, u text, p text, m text, un text, q numeric, f numeric, st int, l int, at jsonb)
        returning source, event_id, occurred_at, account_id, app_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status) ${sql.raw(tail)}`.compile(
    db,
  );
};
const CURRENT_TAIL = `, rolled as (insert into usage_rollups (hour, account_id, app_id, end_user_id, pipeline, model_id, unit, events, failed_events, quantity, fee_wei)
      select date_trunc('hour', occurred_at at time zone 'UTC') at time zone 'UTC' as hour, account_id, coalesce(app_id, ''), coalesce(end_user_id, ''), pipeline,
        coalesce(model_id, ''), unit, count(*), count(*) filter (where status >= 400), sum(quantity), sum(fee_wei)
      from inserted group by 1, 2, 3, 4, 5, 6, 7 order by 2, 1, 3, 4, 5, 6, 7 ${ROLL}) select count(*) from inserted`;
// COPY's text format, escaping only what needs it (the common string needs none).
const NEEDS_ESCAPE = /[\\\t\n\r]/;
const field = (v: string | null) =>
  v === null
    ? '\\N'
    : NEEDS_ESCAPE.test(v)
      ? v.replace(/[\\\t\n\r]/g, (c) =>
          c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r',
        )
      : v;
const copyText = (events: UsageEvent[]) => {
  let out = '';
  for (const e of events) {
    const t = e.occurredAt.toISOString();
    out += `${field(e.source)}\t${field(e.eventId)}\t${t}\t${t.slice(0, 7)}-01\t${field(e.accountId)}\t${field(e.appId)}\t${field(e.keyId)}\t${field(e.clientId)}\t${field(e.endUserId)}\t${field(e.pipeline)}\t${field(e.modelId)}\t${field(e.unit)}\t${e.quantity}\t${e.feeWei}\t${e.status ?? '\\N'}\t${e.latencyMs ?? '\\N'}\t${field(JSON.stringify(e.attributes))}\n`;
  }
  return out;
};
const COPY_TEXT = `copy usage_events (source, event_id, occurred_at, occurred_month, account_id, app_id, key_id, client_id,
  end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes) from stdin`;
// Rollups folded in Node, sent as one jsonb array of arrays.
const rollupsJson = (events: UsageEvent[]) =>
  JSON.stringify(
    foldNode(events).map((r) => [
      r.h,
      r.a,
      r.ap,
      r.eu,
      r.p,
      r.mo,
      r.u,
      r.n,
      r.f,
      r.q.toString(),
      r.w.toString(),
    ]),
  );
const ROLLUPS_JSON = `insert into usage_rollups (hour, account_id, app_id, end_user_id, pipeline, model_id, unit, events, failed_events, quantity, fee_wei)
  select (r->>0)::timestamptz, r->>1, r->>2, r->>3, r->>4, r->>5, r->>6, (r->>7)::bigint, (r->>8)::bigint, (r->>9)::numeric, (r->>10)::numeric
  from jsonb_array_elements($1::jsonb) r ${ROLL}`;
// The COPY path: COPY into a per-connection temp table (emptied at commit), then the
// recorder's insert and rollups from it in one statement.
const STAGE_COPY = COPY.replace('copy usage_events', 'copy usage_stage');
const STAGE_INSERT = `with inserted as (insert into usage_events (source, event_id, occurred_at, occurred_month, account_id, app_id,
        key_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes)
        select source, event_id, occurred_at, occurred_month, account_id, app_id, key_id, end_user_id, pipeline, model_id, unit,
          quantity, fee_wei, status, latency_ms, attributes from usage_stage
        returning source, event_id, occurred_at, account_id, app_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status) ${CURRENT_TAIL}`;
const client = new pg.Client({ connectionString: bench.url });
const cpuOf = (pid: number) =>
  Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e3;
try {
  await migrateToLatest(db);
  await client.connect();
  const pid = (await client.query('select pg_backend_pid() as p')).rows[0].p;
  await client.query(
    `create table usage_events_y2026m10 partition of usage_events for values from ('2026-10-01') to ('2026-11-01')`,
  );
  await sql`insert into accounts (id, email) select unnest(${accounts}::text[]), unnest(${accounts}::text[]) || '@bench'`.execute(
    db,
  );
  await client.query(
    `create temp table usage_stage (like usage_events including defaults) on commit delete rows`,
  );
  for (const stmt of (process.env.DDL ?? '').split(';').filter(Boolean)) await client.query(stmt);
  const q = (c: { sql: string; parameters: readonly unknown[] }) =>
    client.query(c.sql, c.parameters as unknown[]);
  const copyIn = (events: UsageEvent[]) =>
    pipeline(Readable.from([csv(events)]), client.query(copyFrom(COPY)));
  const variants: Record<string, (events: UsageEvent[]) => Promise<unknown>> = {
    copy: copyIn,
    arrays: (events) => q(unnestEvents(events, CURRENT_TAIL)),
    events_arrays: (events) => q(unnestEvents(events, 'select count(*) from inserted')),
    json: (events) => q(jsonEvents(events, CURRENT_TAIL)),
    recordset: (events) => q(recEvents(events, CURRENT_TAIL)),
    rollups_node: (events) => q(rollupSql(foldNode(events))),
    json_events: (events) => q(jsonEvents(events, 'select count(*) from inserted')),
    stage_copy: async (events) => {
      await client.query('begin');
      await pipeline(Readable.from([csv(events)]), client.query(copyFrom(STAGE_COPY)));
      await client.query(STAGE_INSERT);
      await client.query('commit');
    },
    // The ingest route's account check for a batch's accounts (up to 1,000 distinct).
    accounts_in: (events) =>
      q(
        db
          .selectFrom('accounts')
          .select('id')
          .where('id', 'in', [...new Set(events.map((e) => e.accountId))])
          .compile(),
      ),
    accounts_any: (events) =>
      q(
        db
          .selectFrom('accounts')
          .select('id')
          .where(
            'id',
            '=',
            sql<string>`any(${[...new Set(events.map((e) => e.accountId))]}::text[])`,
          )
          .compile(),
      ),
    copy_rollups_json: async (events) => {
      await client.query('begin');
      await pipeline(Readable.from([copyText(events)]), client.query(copyFrom(COPY_TEXT)));
      await client.query(ROLLUPS_JSON, [rollupsJson(events)]);
      await client.query('commit');
    },
    copy_then_rollups: async (events) => {
      const rows = foldNode(events);
      await client.query('begin');
      await copyIn(events);
      await q(rollupSql(rows));
      await client.query('commit');
    },
    arrays_then_rollups: async (events) => {
      const rows = foldNode(events);
      await client.query('begin');
      await q(unnestEvents(events, 'select count(*) from inserted'));
      await q(rollupSql(rows));
      await client.query('commit');
    },
  };
  const names = (process.env.VARIANTS ?? Object.keys(variants).join(',')).split(',');
  const samples = new Map<string, number[]>(names.map((n) => [n, []]));
  const nodeUs = new Map<string, number>(names.map((n) => [n, 0]));
  for (const n of names) await variants[n]!(batchOf(n)); // warm
  for (let r = 0; r < ROUNDS; r++) {
    for (const n of names) {
      const b = batchOf(n);
      const before = cpuOf(pid);
      const nb = process.cpuUsage();
      await variants[n]!(b);
      const nu = process.cpuUsage(nb);
      nodeUs.set(n, nodeUs.get(n)! + (nu.user + nu.system) / 1000 / ROUNDS);
      samples.get(n)!.push((cpuOf(pid) - before) / 1000);
    }
  }
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const copyMed = med(samples.get('copy') ?? [1]);
  for (const [n, xs] of samples)
    console.log(
      `${n.padEnd(20)} PG backend median ${med(xs).toFixed(1)} µs/event, min ${Math.min(...xs).toFixed(1)}; ÷ copy ${(med(xs) / copyMed).toFixed(2)}; Node ${nodeUs.get(n)!.toFixed(1)} µs/event  (load ${load})`,
    );
} finally {
  await client.end();
  await bench.drop();
}
