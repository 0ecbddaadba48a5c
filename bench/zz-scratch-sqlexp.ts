import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { sql } from 'kysely';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { migrateToLatest } from '../src/platform/migrations.ts';
import { insertNewUsageEvents } from '../src/metering/queries.ts';
import type { UsageEvent } from '../src/metering/index.ts';
import { usageEvent } from './load.ts';
import { createBenchDatabase, postgresCpu } from './support.ts';

import type { RawBuilder } from 'kysely';
type Db = any;
async function insertBatch<Row>(
  db: Db,
  events: readonly UsageEvent[],
  onConflict: RawBuilder<unknown>,
  output: RawBuilder<unknown>,
): Promise<Row[]> {
  const col = <T>(pick: (e: UsageEvent) => T) => events.map(pick);
  const text = (v: string | number | null) => (v === null ? null : String(v));
  const result = sql<Row>`
    with input as (
      select * from unnest(
        ${col((e) => e.source)}::text[],
        ${col((e) => e.eventId)}::text[],
        ${col((e) => e.occurredAt.toISOString())}::text[],
        ${col((e) => e.accountId)}::text[],
        ${col((e) => e.appId)}::text[],
        ${col((e) => e.keyId)}::text[],
        ${col((e) => e.clientId)}::text[],
        ${col((e) => e.endUserId)}::text[],
        ${col((e) => e.pipeline)}::text[],
        ${col((e) => e.modelId)}::text[],
        ${col((e) => e.unit)}::text[],
        ${col((e) => e.quantity.toString())}::text[],
        ${col((e) => e.feeWei.toString())}::text[],
        ${col((e) => text(e.status))}::text[],
        ${col((e) => text(e.latencyMs))}::text[],
        ${col((e) => JSON.stringify(e.attributes))}::text[]
      ) as t(source, event_id, occurred_at, account_id, app_id, key_id, client_id, end_user_id,
             pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes)
    ),
    inserted as (
      insert into usage_events (source, event_id, occurred_at, occurred_month, account_id, app_id,
        key_id, client_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status,
        latency_ms, attributes)
      select source, event_id, occurred_at::timestamptz,
        date_trunc('month', occurred_at::timestamptz at time zone 'UTC')::date,
        account_id, app_id, key_id, client_id, end_user_id, pipeline, model_id, unit,
        quantity::numeric, fee_wei::numeric, status::integer, latency_ms::integer,
        attributes::jsonb
      from input
      ${onConflict}
      returning source, event_id, occurred_at, account_id, app_id, end_user_id, pipeline,
        model_id, unit, quantity, fee_wei, status
    ),
    rolled as (
      insert into usage_rollups (hour, account_id, app_id, end_user_id, pipeline, model_id, unit,
        events, failed_events, quantity, fee_wei)
      select date_trunc('hour', occurred_at at time zone 'UTC') at time zone 'UTC' as hour,
        account_id, coalesce(app_id, ''), coalesce(end_user_id, ''), pipeline,
        coalesce(model_id, ''), unit,
        count(*), count(*) filter (where status >= 400), sum(quantity), sum(fee_wei)
      from inserted
      group by 1, 2, 3, 4, 5, 6, 7
      -- A fixed order takes row locks in the same order in every transaction: no deadlocks
      -- between concurrent batches touching the same rollup rows.
      order by 2, 1, 3, 4, 5, 6, 7
      on conflict (account_id, hour, app_id, end_user_id, pipeline, model_id, unit) do update set
        events = usage_rollups.events + excluded.events,
        failed_events = usage_rollups.failed_events + excluded.failed_events,
        quantity = usage_rollups.quantity + excluded.quantity,
        fee_wei = usage_rollups.fee_wei + excluded.fee_wei
    )
    ${output}
  `.compile(db as any);
  return result as any;
}


const BATCHES = Number(process.env.BATCHES ?? 10);
const bench = await createBenchDatabase();
const { db } = bench.database;
const accounts = Array.from({ length: 1000 }, (_, i) => `acct_bench${String(i).padStart(6, '0')}`);
let next = 0;
const batchOf = (source: string): UsageEvent[] => {
  const out: UsageEvent[] = [];
  for (let i = next; i < next + 1000; i++) {
    const e = usageEvent(i, source, accounts);
    out.push({ source: e.source, eventId: e.id, occurredAt: new Date(e.time), accountId: e.subject,
      appId: e.data.app_id, keyId: e.data.key_id, clientId: null, endUserId: e.data.end_user_id ?? null,
      pipeline: e.data.pipeline, modelId: e.data.model_id, unit: e.data.unit as any,
      quantity: BigInt(e.data.quantity), feeWei: BigInt(e.data.fee_wei), status: e.data.status,
      latencyMs: e.data.latency_ms, attributes: e.data.attributes });
  }
  next += 1000;
  return out;
};
const csvField = (v: unknown) => v === null || v === undefined ? '' : `"${String(v).replaceAll('"', '""')}"`;
const csv = (events: UsageEvent[]) => events.map((e) => [e.source, e.eventId, e.occurredAt.toISOString(),
  `${e.occurredAt.toISOString().slice(0, 7)}-01`, e.accountId, e.appId, e.keyId, e.endUserId, e.pipeline, e.modelId,
  e.unit, e.quantity, e.feeWei, e.status, e.latencyMs, JSON.stringify(e.attributes)].map(csvField).join(',')).join('\n') + '\n';
const client = new pg.Client({ connectionString: bench.url });
try {
  await migrateToLatest(db);
  await client.connect();
  await sql`create table usage_events_y2026m10 partition of usage_events for values from ('2026-10-01') to ('2026-11-01')`.execute(db);
  const variants: Record<string, (events: UsageEvent[]) => Promise<void>> = {
    current: (events) => insertNewUsageEvents(db, events),
    copy: async (events) => {
      await pipeline(Readable.from([csv(events)]), client.query(copyFrom(`copy usage_events (source, event_id, occurred_at, occurred_month, account_id,
          app_id, key_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes) from stdin with (format csv)`)));
    },
    copy_staged: async (events) => {
      await client.query('begin');
      await client.query(`create temp table if not exists usage_stage (source text collate "C", event_id text collate "C", occurred_at timestamptz, occurred_month date, account_id text collate "C",
          app_id text, key_id text, end_user_id text, pipeline text, model_id text, unit text, quantity numeric, fee_wei numeric, status int, latency_ms int, attributes jsonb) on commit delete rows`);
      await pipeline(Readable.from([csv(events)]), client.query(copyFrom(`copy usage_stage from stdin with (format csv)`)));
      await client.query(`with inserted as (insert into usage_events (source, event_id, occurred_at, occurred_month, account_id,
          app_id, key_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes) select * from usage_stage
          returning occurred_at, account_id, app_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status)
        insert into usage_rollups (hour, account_id, app_id, end_user_id, pipeline, model_id, unit, events, failed_events, quantity, fee_wei)
        select date_trunc('hour', occurred_at at time zone 'UTC') at time zone 'UTC', account_id, coalesce(app_id, ''), coalesce(end_user_id, ''), pipeline,
        coalesce(model_id, ''), unit, count(*), count(*) filter (where status >= 400), sum(quantity), sum(fee_wei) from inserted group by 1,2,3,4,5,6,7 order by 2,1,3,4,5,6,7
        on conflict (account_id, hour, app_id, end_user_id, pipeline, model_id, unit) do update set events = usage_rollups.events + excluded.events,
        failed_events = usage_rollups.failed_events + excluded.failed_events, quantity = usage_rollups.quantity + excluded.quantity, fee_wei = usage_rollups.fee_wei + excluded.fee_wei`);
      await client.query('commit');
    },
  };

  const ROLL = `on conflict (account_id, hour, app_id, end_user_id, pipeline, model_id, unit) do update set events = usage_rollups.events + excluded.events,
        failed_events = usage_rollups.failed_events + excluded.failed_events, quantity = usage_rollups.quantity + excluded.quantity, fee_wei = usage_rollups.fee_wei + excluded.fee_wei`;
  const foldNode = (events: UsageEvent[]) => {
    const m = new Map<string, { h: string; a: string; ap: string; eu: string; p: string; mo: string; u: string; n: number; f: number; q: bigint; w: bigint }>();
    for (const e of events) {
      const h = new Date(Math.floor(e.occurredAt.getTime() / 3600000) * 3600000).toISOString();
      const k = `${e.accountId}\0${h}\0${e.appId ?? ''}\0${e.endUserId ?? ''}\0${e.pipeline}\0${e.modelId ?? ''}\0${e.unit}`;
      let r = m.get(k);
      if (!r) m.set(k, (r = { h, a: e.accountId, ap: e.appId ?? '', eu: e.endUserId ?? '', p: e.pipeline, mo: e.modelId ?? '', u: e.unit, n: 0, f: 0, q: 0n, w: 0n }));
      r.n++; if ((e.status ?? 0) >= 400) r.f++; r.q += e.quantity; r.w += e.feeWei;
    }
    const rows = [...m.values()].sort((x, y) => (x.a < y.a ? -1 : x.a > y.a ? 1 : x.h < y.h ? -1 : x.h > y.h ? 1 : 0));
    return rows;
  };
  const rollupSql = (rows: ReturnType<typeof foldNode>) => sql`insert into usage_rollups (hour, account_id, app_id, end_user_id, pipeline, model_id, unit, events, failed_events, quantity, fee_wei)
      select h::timestamptz, a, ap, eu, p, mo, u, n::bigint, f::bigint, q::numeric, w::numeric from unnest(${rows.map((r) => r.h)}::text[], ${rows.map((r) => r.a)}::text[],
      ${rows.map((r) => r.ap)}::text[], ${rows.map((r) => r.eu)}::text[], ${rows.map((r) => r.p)}::text[], ${rows.map((r) => r.mo)}::text[], ${rows.map((r) => r.u)}::text[],
      ${rows.map((r) => String(r.n))}::text[], ${rows.map((r) => String(r.f))}::text[], ${rows.map((r) => r.q.toString())}::text[], ${rows.map((r) => r.w.toString())}::text[])
      as t(h, a, ap, eu, p, mo, u, n, f, q, w) order by a, h ${sql.raw(ROLL)}`;
  variants.copy_nodefold = async (events) => {
    const rows = foldNode(events);
    await db.transaction().execute(async (trx) => {
      const conn = client; // COPY on the raw client, rollups on the same client for the transaction
      void trx;
      await conn.query('begin');
      await pipeline(Readable.from([csv(events)]), conn.query(copyFrom(`copy usage_events (source, event_id, occurred_at, occurred_month, account_id,
          app_id, key_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes) from stdin with (format csv)`)));
      const compiled = rollupSql(rows).compile(db);
      await conn.query(compiled.sql, compiled.parameters as unknown[]);
      await conn.query('commit');
    });
  };
  variants.unnest_nodefold = async (events) => {
    const rows = foldNode(events);
    await db.transaction().execute(async (trx) => {
      const col = <T,>(pick: (e: UsageEvent) => T) => events.map(pick);
      const text = (v: string | number | null) => (v === null ? null : String(v));
      await sql`insert into usage_events (source, event_id, occurred_at, occurred_month, account_id, app_id,
        key_id, client_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes)
        select source, event_id, occurred_at::timestamptz, date_trunc('month', occurred_at::timestamptz at time zone 'UTC')::date,
        account_id, app_id, key_id, client_id, end_user_id, pipeline, model_id, unit, quantity::numeric, fee_wei::numeric, status::integer, latency_ms::integer, attributes::jsonb
        from unnest(${col((e) => e.source)}::text[], ${col((e) => e.eventId)}::text[], ${col((e) => e.occurredAt.toISOString())}::text[], ${col((e) => e.accountId)}::text[],
        ${col((e) => e.appId)}::text[], ${col((e) => e.keyId)}::text[], ${col((e) => e.clientId)}::text[], ${col((e) => e.endUserId)}::text[], ${col((e) => e.pipeline)}::text[],
        ${col((e) => e.modelId)}::text[], ${col((e) => e.unit)}::text[], ${col((e) => e.quantity.toString())}::text[], ${col((e) => e.feeWei.toString())}::text[],
        ${col((e) => text(e.status))}::text[], ${col((e) => text(e.latencyMs))}::text[], ${col((e) => JSON.stringify(e.attributes))}::text[])
        as t(source, event_id, occurred_at, account_id, app_id, key_id, client_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes)`.execute(trx);
      await rollupSql(rows).execute(trx);
    });
  };
  variants.json_nodefold = async (events) => {
    const rows = foldNode(events);
    const payload = JSON.stringify(events.map((e) => [e.source, e.eventId, e.occurredAt.toISOString(), e.accountId, e.appId, e.keyId, e.clientId, e.endUserId, e.pipeline, e.modelId, e.unit, e.quantity.toString(), e.feeWei.toString(), e.status, e.latencyMs, e.attributes]));
    await db.transaction().execute(async (trx) => {
      await sql`insert into usage_events (source, event_id, occurred_at, occurred_month, account_id, app_id,
        key_id, client_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status, latency_ms, attributes)
        select r->>0, r->>1, (r->>2)::timestamptz, date_trunc('month', (r->>2)::timestamptz at time zone 'UTC')::date, r->>3, r->>4, r->>5, r->>6, r->>7, r->>8, r->>9, r->>10,
          (r->>11)::numeric, (r->>12)::numeric, (r->>13)::integer, (r->>14)::integer, r->15
        from jsonb_array_elements(${payload}::jsonb) r`.execute(trx);
      await rollupSql(rows).execute(trx);
    });
  };
  const run = async (label: string, name: string) => {
    const used = await postgresCpu(bench.name);
    const n0 = process.cpuUsage();
    const t0 = performance.now();
    for (let b = 0; b < BATCHES; b++) await variants[name]!(batchOf(name));
    const ms = performance.now() - t0;
    const nc = process.cpuUsage(n0);
    const cpu = await used();
    console.log(`${label.padEnd(30)} ${name.padEnd(12)} PG ${(cpu * 1e6 / (BATCHES * 1000)).toFixed(1)} µs/event, Node ${((nc.user + nc.system) / (BATCHES * 1000)).toFixed(1)} µs/event, wall ${(ms * 1000 / (BATCHES * 1000)).toFixed(1)} µs/event`);
  };
  const round = async (label: string) => { for (const v of (process.env.VARIANTS ?? 'copy,current,copy_staged').split(',').concat((process.env.VARIANTS ?? 'copy,current,copy_staged').split(','))) await run(label, v); };
  await run('warm', 'current'); await run('warm', 'copy');
  if (process.env.EXPLAIN) {
    await client.query("load 'auto_explain'"); await client.query('set auto_explain.log_min_duration = 0'); await client.query('set auto_explain.log_analyze = on'); await client.query('set auto_explain.log_buffers = on'); await client.query('set auto_explain.log_level = notice');
    client.on('notice', (n) => console.log(n.message));
    for (let k = 0; k < 3; k++) { const c = await insertBatch(db, batchOf('ex'), sql``, sql`select count(*) from inserted`) as any; await client.query(c.sql, c.parameters); }
    throw new Error('explained');
    for (let k = 0; k < 3; k++) {
    const { insertNewUsageEvents: _x } = await import('../src/metering/queries.ts');
    const events = batchOf('explain');
    // capture the SQL by running through a fake executor: simpler to compile via kysely's sql
    const trxResult = await db.transaction().execute(async (trx) => {
      const orig = trx.getExecutor();
      let captured: any = null;
      const spy = new Proxy(orig, { get(t, prop) { if (prop === 'executeQuery') return async (cq: any, qid: any) => { captured = cq; return { rows: [] }; }; return (t as any)[prop]; } });
      const fake = trx.withPlugin({ transformQuery: (a: any) => a.node, transformResult: async (a: any) => a.result } as any);
      void fake; void spy;
      return null;
    });
    void trxResult;
    }
  }

  await round('3+3 indexes'); if (process.env.ONLY) { throw new Error('done'); }
  await sql`drop index usage_rollups_hour_idx`.execute(db);
  await round('rollups: pkey + app idx');
  await sql`drop index usage_rollups_app_hour_idx`.execute(db);
  await round('rollups: pkey only');
  await sql`drop index usage_events_time_idx`.execute(db);
  await round('events: 2 idx, rollups pkey');
  await sql`drop index usage_events_account_time_idx`.execute(db);
  await round('events: unique only, rollups pkey');
} finally {
  await client.end();
  await bench.drop();
}
