import { sql } from 'kysely';
import type { Kysely, RawBuilder, Transaction } from 'kysely';
import type { Database } from '../database.ts';
import type { StoredUsageEvent, Unit, UsageEvent } from './model.ts';

type Db = Kysely<Database> | Transaction<Database>;

/** The UTC month of `date` as `YYYY-MM` (events are between 2000 and now: four-digit years). */
export function monthOf(date: Date): string {
  // Called several times per recorded event: arithmetic, not toISOString (a profile of the
  // recorder showed toISOString().slice as its most expensive line).
  const month = date.getUTCMonth() + 1;
  return `${date.getUTCFullYear()}-${month < 10 ? '0' : ''}${month}`;
}

function partitionName(month: string): string {
  return `usage_events_y${month.slice(0, 4)}m${month.slice(5, 7)}`;
}

function nextMonth(month: string): string {
  const [year, m] = month.split('-').map(Number) as [number, number];
  return m === 12 ? `${year + 1}-01` : `${year}-${String(m + 1).padStart(2, '0')}`;
}

/**
 * Creates the monthly partition if it does not exist. A transaction-level advisory lock per
 * month makes concurrent creators (replicas) wait for each other instead of failing on the
 * catalog's unique index.
 */
export async function createPartition(trx: Transaction<Database>, month: string): Promise<void> {
  const name = partitionName(month);
  await sql`select pg_advisory_xact_lock(hashtext(${name}))`.execute(trx);
  await sql`
    create table if not exists ${sql.table(name)} partition of usage_events
    for values from (${sql.lit(`${month}-01`)}) to (${sql.lit(`${nextMonth(month)}-01`)})
  `.execute(trx);
}

/** Months (`YYYY-MM`) that have a partition, oldest first. */
export async function listPartitionMonths(db: Db): Promise<string[]> {
  const result = await sql<{ name: string }>`
    select c.relname as name from pg_inherits i
    join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'usage_events'::regclass
  `.execute(db);
  return result.rows
    .map((r) => /^usage_events_y(\d{4})m(\d{2})$/.exec(r.name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => `${m[1]}-${m[2]}`)
    .sort();
}

export async function dropPartition(trx: Transaction<Database>, month: string): Promise<void> {
  await sql`drop table if exists ${sql.table(partitionName(month))}`.execute(trx);
}

/** PostgreSQL's "no partition of relation … found for row". */
export function isMissingPartition(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e.code === '23514' && /no partition/.test(e.message ?? '');
}

/**
 * Inserts a batch and updates the hourly rollups in ONE statement, so an event and its share
 * of the rollups commit together or not at all. Duplicates (same source, event id and month)
 * are skipped, in the batch or against stored rows. Returns the keys actually inserted (with
 * their month, which is part of the key).
 */
export async function insertUsageEvents(
  db: Db,
  events: readonly UsageEvent[],
): Promise<Array<{ source: string; eventId: string; month: string }>> {
  if (events.length === 0) return [];
  const result = await insertBatch<{ source: string; event_id: string; month: string }>(
    db,
    events,
    sql`on conflict (source, event_id, occurred_month) do nothing`,
    sql`select source, event_id, to_char(occurred_at at time zone 'UTC', 'YYYY-MM') as month
      from inserted`,
  );
  return result.map((r) => ({ source: r.source, eventId: r.event_id, month: r.month }));
}

/**
 * The same insert for a batch believed new: no conflict handling, so PostgreSQL skips the
 * speculative-insertion pre-check on every row, and only a count comes back (together about
 * a fifth of the server's CPU per fresh event; BENCHMARKS.md, metering). A stored key or a
 * key twice in the batch fails the whole statement (`isDuplicateKey`) and nothing is
 * written; the caller then uses `insertUsageEvents`.
 */
export async function insertNewUsageEvents(db: Db, events: readonly UsageEvent[]): Promise<void> {
  if (events.length === 0) return;
  await insertBatch(db, events, sql``, sql`select count(*) from inserted`);
}

/** unique_violation: only the events' idempotency key can raise it in `insertNewUsageEvents`
 * (the rollup upsert resolves its own conflicts). */
export function isDuplicateKey(error: unknown): boolean {
  return (error as { code?: string }).code === '23505';
}

/**
 * The batch travels as ONE jsonb parameter (an array of 16-element arrays, in the column
 * order below) rather than sixteen text[] parameters: JSON.stringify is native, where the
 * driver escapes every array element in JavaScript (about a quarter of the server process's
 * CPU per ingested event), and PostgreSQL reads one jsonb value faster than it parses sixteen
 * array literals (bench/metering-ingest.ts; BENCHMARKS.md, metering). Both drivers (pg,
 * PGlite) bind a string the same way. Strings reached here through the boundary's string rule
 * (no NUL, no lone surrogate), which jsonb needs as text does.
 */
function eventRows(events: readonly UsageEvent[]): string {
  return JSON.stringify(
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
}

async function insertBatch<Row>(
  db: Db,
  events: readonly UsageEvent[],
  onConflict: RawBuilder<unknown>,
  output: RawBuilder<unknown>,
): Promise<Row[]> {
  const result = await sql<Row>`
    with input as (
      select r->>0 as source, r->>1 as event_id, (r->>2)::timestamptz as occurred_at,
        r->>3 as account_id, r->>4 as app_id, r->>5 as key_id, r->>6 as client_id,
        r->>7 as end_user_id, r->>8 as pipeline, r->>9 as model_id, r->>10 as unit,
        (r->>11)::numeric as quantity, (r->>12)::numeric as fee_wei,
        (r->>13)::integer as status, (r->>14)::integer as latency_ms, r->15 as attributes
      from jsonb_array_elements(${eventRows(events)}::jsonb) as r
    ),
    inserted as (
      insert into usage_events (source, event_id, occurred_at, occurred_month, account_id, app_id,
        key_id, client_id, end_user_id, pipeline, model_id, unit, quantity, fee_wei, status,
        latency_ms, attributes)
      select source, event_id, occurred_at,
        date_trunc('month', occurred_at at time zone 'UTC')::date,
        account_id, app_id, key_id, client_id, end_user_id, pipeline, model_id, unit,
        quantity, fee_wei, status, latency_ms, attributes
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
  `.execute(db);
  return result.rows;
}

/** The idempotency key of an event as `findStoredEventKeys` reports it. */
export function storedKeyOf(source: string, eventId: string, month: string): string {
  return `${source}\u0000${eventId}\u0000${month}`;
}

/**
 * Which of `events` (whose months, `monthOf`, are `eventMonths`) are already stored, as
 * `storedKeyOf` strings. Sends only the keys (three arrays instead of sixteen) and probes the
 * unique index once per key (a nested loop of index-only scans, checked on 2 M stored
 * events); the month list lets PostgreSQL skip every other partition.
 */
export async function findStoredEventKeys(
  db: Db,
  events: readonly UsageEvent[],
  eventMonths: readonly string[],
): Promise<Set<string>> {
  if (events.length === 0) return new Set();
  const months = eventMonths.map((m) => `${m}-01`);
  const result = await sql<{ source: string; event_id: string; month: string }>`
    select source, event_id, to_char(occurred_month, 'YYYY-MM') as month
    from usage_events
    where occurred_month = any(${[...new Set(months)]}::text[]::date[])
      and (source, event_id, occurred_month) in (
        select s, e, m::date from unnest(
          ${events.map((e) => e.source)}::text[],
          ${events.map((e) => e.eventId)}::text[],
          ${months}::text[]
        ) as k(s, e, m)
      )
  `.execute(db);
  return new Set(result.rows.map((r) => storedKeyOf(r.source, r.event_id, r.month)));
}

/**
 * Account ids among `ids` that exist. The ids go as one array parameter, not one parameter
 * each: an ingest batch names up to 1,000 accounts, and PostgreSQL parsed and planned a
 * 1,000-element IN list on every batch (2.1 ms of backend CPU against 0.5 ms; BENCHMARKS.md,
 * metering).
 */
export async function findExistingAccountIds(db: Db, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await db
    .selectFrom('accounts')
    .select('id')
    .where('id', '=', sql<string>`any(${[...ids]}::text[])`)
    .execute();
  return new Set(rows.map((r) => r.id));
}

export interface UsageFilter {
  from: Date;
  to: Date;
  accountId?: string;
  appId?: string;
  endUserId?: string;
  pipeline?: string;
  modelId?: string;
}

export const GROUP_BY = ['day', 'account', 'app', 'end_user', 'pipeline', 'model'] as const;
export type GroupBy = (typeof GROUP_BY)[number];

const GROUP_COLUMNS = {
  day: sql<string>`to_char(hour at time zone 'UTC', 'YYYY-MM-DD')`,
  account: sql<string>`account_id`,
  app: sql<string>`app_id`,
  end_user: sql<string>`end_user_id`,
  pipeline: sql<string>`pipeline`,
  model: sql<string>`model_id`,
} as const;

export interface UsageRow {
  dimensions: Partial<Record<GroupBy, string | null>>;
  unit: Unit;
  events: bigint;
  failedEvents: bigint;
  quantity: bigint;
  feeWei: bigint;
}

/** Totals from the hourly rollups (never the raw events), grouped by `groupBy` and unit. */
export async function sumUsage(
  db: Db,
  filter: UsageFilter,
  groupBy: readonly GroupBy[],
): Promise<UsageRow[]> {
  let query = db
    .selectFrom('usage_rollups')
    .where('hour', '>=', filter.from)
    .where('hour', '<', filter.to);
  if (filter.accountId !== undefined) query = query.where('account_id', '=', filter.accountId);
  if (filter.appId !== undefined) query = query.where('app_id', '=', filter.appId);
  if (filter.endUserId !== undefined) query = query.where('end_user_id', '=', filter.endUserId);
  if (filter.pipeline !== undefined) query = query.where('pipeline', '=', filter.pipeline);
  if (filter.modelId !== undefined) query = query.where('model_id', '=', filter.modelId);
  const dims = groupBy.map((g) => GROUP_COLUMNS[g].as(g));
  let grouped = query
    .select(dims)
    .select([
      'unit',
      sql<string>`sum(events)::text`.as('events'),
      sql<string>`sum(failed_events)::text`.as('failed_events'),
      sql<string>`sum(quantity)::text`.as('quantity'),
      sql<string>`sum(fee_wei)::text`.as('fee_wei'),
    ])
    .groupBy([...groupBy.map((g) => GROUP_COLUMNS[g]), sql`unit`]);
  for (const g of groupBy) grouped = grouped.orderBy(GROUP_COLUMNS[g]);
  const rows = await grouped.orderBy('unit').execute();
  return rows.map((row) => {
    const r = row as Record<string, string>;
    const dimensions: UsageRow['dimensions'] = {};
    for (const g of groupBy) dimensions[g] = r[g] === '' ? null : (r[g] ?? null);
    return {
      dimensions,
      unit: r.unit as Unit,
      events: BigInt(r.events ?? '0'),
      failedEvents: BigInt(r.failed_events ?? '0'),
      quantity: BigInt(r.quantity ?? '0'),
      feeWei: BigInt(r.fee_wei ?? '0'),
    };
  });
}

export interface EventCursor {
  occurredAt: Date;
  id: bigint;
}

/** Raw events in (occurred_at, id) order after `cursor`, at most `limit`. */
export async function listUsageEvents(
  db: Db,
  filter: UsageFilter,
  cursor: EventCursor | null,
  limit: number,
): Promise<StoredUsageEvent[]> {
  let query = db
    .selectFrom('usage_events')
    .selectAll()
    .where('occurred_at', '>=', filter.from)
    .where('occurred_at', '<', filter.to);
  if (filter.accountId !== undefined) query = query.where('account_id', '=', filter.accountId);
  if (filter.appId !== undefined) query = query.where('app_id', '=', filter.appId);
  if (filter.endUserId !== undefined) query = query.where('end_user_id', '=', filter.endUserId);
  if (filter.pipeline !== undefined) query = query.where('pipeline', '=', filter.pipeline);
  if (filter.modelId !== undefined) query = query.where('model_id', '=', filter.modelId);
  if (cursor !== null) {
    // A row comparison, not `a > x or (a = x and b > y)`: PostgreSQL turns it into one index
    // range scan that stops after `limit` rows, where the OR form read and sorted every row
    // after the cursor on each page (an export was quadratic in the month's events).
    query = query.where((eb) =>
      eb(eb.refTuple('occurred_at', 'id'), '>', eb.tuple(cursor.occurredAt, cursor.id)),
    );
  }
  const rows = await query.orderBy('occurred_at').orderBy('id').limit(limit).execute();
  return rows.map((r) => ({
    id: BigInt(r.id),
    recordedAt: r.recorded_at,
    source: r.source,
    eventId: r.event_id,
    occurredAt: r.occurred_at,
    accountId: r.account_id,
    appId: r.app_id,
    keyId: r.key_id,
    clientId: r.client_id,
    endUserId: r.end_user_id,
    pipeline: r.pipeline,
    modelId: r.model_id,
    unit: r.unit as Unit,
    quantity: BigInt(r.quantity),
    feeWei: BigInt(r.fee_wei),
    status: r.status,
    latencyMs: r.latency_ms,
    attributes: r.attributes,
  }));
}

// ---- reads for billing (./reads.ts) --------------------------------------------------------

export interface PayerSpend {
  accountId: string;
  /** '' when the usage had none (the rollups' default). */
  appId: string;
  endUserId: string;
  feeWei: bigint;
}

/** fee_wei per account / app / end user from the hourly rollups of [from, to). */
export async function sumRollupFees(db: Db, from: Date, to: Date): Promise<PayerSpend[]> {
  const rows = await db
    .selectFrom('usage_rollups')
    .select(['account_id', 'app_id', 'end_user_id', sql<string>`sum(fee_wei)::text`.as('fee_wei')])
    .where('hour', '>=', from)
    .where('hour', '<', to)
    .groupBy(['account_id', 'app_id', 'end_user_id'])
    .execute();
  return rows.map((r) => ({
    accountId: r.account_id,
    appId: r.app_id,
    endUserId: r.end_user_id,
    feeWei: BigInt(r.fee_wei),
  }));
}

export interface BillableUsage {
  accountId: string;
  /** The month the usage occurred in (YYYY-MM): earlier than the closed month when late. */
  originMonth: string;
  pipeline: string;
  /** '' when the events had none. */
  modelId: string;
  unit: string;
  events: bigint;
  quantity: bigint;
  feeWei: bigint;
}

/**
 * What the close of `forMonth` bills: the month's events recorded up to `cutoff`, plus
 * events of earlier months recorded after the previous close's cutoff (late).
 */
export async function sumBillableUsage(
  db: Db,
  forMonth: string,
  cutoff: Date,
  previousCutoff: Date | null,
): Promise<BillableUsage[]> {
  const first = `${forMonth}-01`;
  const rows = await sql<{
    account_id: string;
    origin_month: string;
    pipeline: string;
    model_id: string;
    unit: string;
    events: string;
    quantity: string;
    fee_wei: string;
  }>`
    select account_id, to_char(occurred_month, 'YYYY-MM') as origin_month, pipeline,
      coalesce(model_id, '') as model_id, unit, count(*)::text as events,
      sum(quantity)::text as quantity, sum(fee_wei)::text as fee_wei
    from usage_events
    where occurred_month <= ${first}::date and recorded_at <= ${cutoff}
      and (occurred_month = ${first}::date
        ${previousCutoff === null ? sql`or true` : sql`or recorded_at > ${previousCutoff}`})
    group by 1, 2, 3, 4, 5
    order by 1, 2, 3, 4, 5`.execute(db);
  return rows.rows.map((r) => ({
    accountId: r.account_id,
    originMonth: r.origin_month,
    pipeline: r.pipeline,
    modelId: r.model_id,
    unit: r.unit,
    events: BigInt(r.events),
    quantity: BigInt(r.quantity),
    feeWei: BigInt(r.fee_wei),
  }));
}
