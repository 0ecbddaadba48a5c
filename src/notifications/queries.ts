// The notifications capability's SQL: endpoints, the fan-out of the outbox into deliveries,
// and the leases that let several replicas send deliveries without sending one twice at once.
import { sql } from 'kysely';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../database.ts';
import { newId } from '../platform/ids.ts';
import type { WebhookDeliveryRow, WebhookEndpointRow } from './table.ts';

/** NOTIFY channel: new events or deliveries are waiting (payload unused). */
export const WEBHOOKS_CHANNEL = 'tollhouse_webhooks';

// pg_advisory_xact_lock key of the fan-out: the first 8 bytes of
// sha256("tollhouse.notifications.fanout") as a signed int8. One replica fans out at a time, so
// deliveries are created in event order for every endpoint.
const FANOUT_LOCK_KEY = 0x1f6b8a0e3c5d7f21n;

export async function notifyWebhooks(db: Kysely<Database>): Promise<void> {
  await sql`select pg_notify(${WEBHOOKS_CHANNEL}, '')`.execute(db);
}

export async function insertEndpoint(
  db: Kysely<Database>,
  row: {
    id: string;
    accountId: string | null;
    allAccounts: boolean;
    url: string;
    description: string;
    eventTypes: readonly string[];
    secretSealed: string;
    at: Date;
  },
): Promise<WebhookEndpointRow> {
  return db
    .insertInto('webhook_endpoints')
    .values({
      id: row.id,
      account_id: row.accountId,
      all_accounts: row.allAccounts,
      url: row.url,
      description: row.description,
      event_types: JSON.stringify(row.eventTypes),
      secret_sealed: row.secretSealed,
      enabled: true,
      created_at: row.at,
      updated_at: row.at,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function countEndpoints(
  db: Kysely<Database>,
  accountId: string | null,
): Promise<number> {
  const row = await db
    .selectFrom('webhook_endpoints')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('account_id', accountId === null ? 'is' : '=', accountId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function findEndpoint(
  db: Kysely<Database>,
  id: string,
): Promise<WebhookEndpointRow | undefined> {
  return db.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).executeTakeFirst();
}

/** `accountId` undefined: every endpoint; null: the deployment's. */
export async function listEndpoints(
  db: Kysely<Database>,
  accountId: string | null | undefined,
): Promise<WebhookEndpointRow[]> {
  let query = db.selectFrom('webhook_endpoints').selectAll().orderBy('created_at').orderBy('id');
  if (accountId !== undefined) {
    query = query.where('account_id', accountId === null ? 'is' : '=', accountId);
  }
  return query.execute();
}

export async function updateEndpoint(
  db: Kysely<Database>,
  id: string,
  patch: Partial<{
    url: string;
    description: string;
    event_types: string;
    enabled: boolean;
    disabled_reason: string | null;
    consecutive_failures: number;
    failing_since: Date | null;
    secret_sealed: string;
    previous_secret_sealed: string | null;
    previous_secret_expires_at: Date | null;
  }>,
  at: Date,
): Promise<WebhookEndpointRow | undefined> {
  return db
    .updateTable('webhook_endpoints')
    .set({ ...patch, updated_at: at })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteEndpoint(db: Kysely<Database>, id: string): Promise<boolean> {
  const result = await db.deleteFrom('webhook_endpoints').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

export interface FannedEvent {
  id: string;
  type: string;
  accountId: string | null;
  data: Record<string, unknown>;
  occurredAt: Date;
}

/**
 * Turns up to `limit` events not yet fanned out into deliveries, in one transaction under the
 * fan-out lock; returns the events (for e-mail alerts), or null when another replica holds the
 * lock. An endpoint hears its account's events; a deployment endpoint hears deployment events
 * and, with `all_accounts`, every account's. Disabled endpoints get nothing new.
 */
export async function fanOut(
  db: Kysely<Database>,
  at: Date,
  limit: number,
): Promise<FannedEvent[] | null> {
  return db.transaction().execute(async (trx) => {
    const locked = await sql<{
      ok: boolean;
    }>`select pg_try_advisory_xact_lock(${FANOUT_LOCK_KEY}) as ok`.execute(trx);
    if (locked.rows[0]?.ok !== true) return null;
    const events = await trx
      .selectFrom('outbound_events')
      .select(['id', 'type', 'account_id', 'data', 'occurred_at'])
      .where('fanned_out_at', 'is', null)
      .orderBy('seq')
      .limit(limit)
      .execute();
    if (events.length === 0) return [];
    const endpoints = await trx
      .selectFrom('webhook_endpoints')
      .select(['id', 'account_id', 'all_accounts', 'event_types'])
      .where('enabled', '=', true)
      .execute();
    const rows: Array<{ id: string; endpoint_id: string; event_id: string }> = [];
    for (const event of events) {
      for (const endpoint of endpoints) {
        if (!hears(endpoint, event.type, event.account_id)) continue;
        rows.push({ id: newId('whd'), endpoint_id: endpoint.id, event_id: event.id });
      }
    }
    // In event order, so `seq` (the per-endpoint send order) follows the events'.
    for (let i = 0; i < rows.length; i += 1000) {
      await trx
        .insertInto('webhook_deliveries')
        .values(
          rows.slice(i, i + 1000).map((r) => ({
            ...r,
            status: 'pending' as const,
            next_attempt_at: at,
            created_at: at,
          })),
        )
        .execute();
    }
    await trx
      .updateTable('outbound_events')
      .set({ fanned_out_at: at })
      .where(
        'id',
        'in',
        events.map((e) => e.id),
      )
      .execute();
    return events.map((e) => ({
      id: e.id,
      type: e.type,
      accountId: e.account_id,
      data: e.data,
      occurredAt: e.occurred_at,
    }));
  });
}

export function hears(
  endpoint: { account_id: string | null; all_accounts: boolean; event_types: readonly string[] },
  type: string,
  accountId: string | null,
): boolean {
  if (type === 'webhook.test') return false;
  if (endpoint.event_types.length > 0 && !endpoint.event_types.includes(type)) return false;
  if (endpoint.account_id !== null) return endpoint.account_id === accountId;
  return accountId === null || endpoint.all_accounts;
}

/**
 * Leases the head of each endpoint's queue that is due and not leased (at most `limit`): one
 * delivery in flight per endpoint, in `seq` order. The UPDATE re-checks the lease, so when two
 * replicas pick the same head only one gets it. The attempt is counted now: an attempt whose
 * replica died still counts.
 */
export async function leaseDue(
  db: Kysely<Database>,
  at: Date,
  leaseUntil: Date,
  limit: number,
): Promise<WebhookDeliveryRow[]> {
  // Per enabled endpoint, the first pending delivery by the (endpoint_id, seq) index: the cost
  // grows with the number of endpoints, not with the backlog.
  const heads = await sql<{ id: string }>`
    select h.id from webhook_endpoints e
    cross join lateral (
      select d.id, d.next_attempt_at, d.lease_until
      from webhook_deliveries d
      where d.endpoint_id = e.id and d.status = 'pending'
      order by d.seq
      limit 1
    ) h
    where e.enabled
      and h.next_attempt_at <= ${at} and (h.lease_until is null or h.lease_until <= ${at})
    order by h.next_attempt_at
    limit ${limit}`.execute(db);
  if (heads.rows.length === 0) return [];
  return db
    .updateTable('webhook_deliveries')
    .set((eb) => ({ lease_until: leaseUntil, attempts: eb('attempts', '+', 1) }))
    .where(
      'id',
      'in',
      heads.rows.map((r) => r.id),
    )
    .where('status', '=', 'pending')
    .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', at)]))
    .returningAll()
    .execute();
}

/**
 * The next delivery of one endpoint, leased, when it is due and nobody holds it (the sender
 * goes straight on with an endpoint's queue after a success, without a new scan).
 */
export async function leaseNext(
  db: Kysely<Database>,
  endpointId: string,
  at: Date,
  leaseUntil: Date,
): Promise<WebhookDeliveryRow | undefined> {
  return db
    .updateTable('webhook_deliveries')
    .set((eb) => ({ lease_until: leaseUntil, attempts: eb('attempts', '+', 1) }))
    .where('id', '=', (eb) =>
      eb
        .selectFrom('webhook_deliveries')
        .select('id')
        .where('endpoint_id', '=', endpointId)
        .where('status', '=', 'pending')
        .orderBy('seq')
        .limit(1),
    )
    .where('status', '=', 'pending')
    .where('next_attempt_at', '<=', at)
    .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', at)]))
    .where((eb) =>
      eb.exists(
        eb
          .selectFrom('webhook_endpoints')
          .select('id')
          .where('id', '=', endpointId)
          .where('enabled', '=', true),
      ),
    )
    .returningAll()
    .executeTakeFirst();
}

export interface DeliveryContext {
  delivery: WebhookDeliveryRow;
  endpoint: WebhookEndpointRow;
  event: FannedEvent;
}

export async function loadContext(
  db: Kysely<Database>,
  delivery: WebhookDeliveryRow,
): Promise<DeliveryContext | null> {
  const row = await db
    .selectFrom('webhook_endpoints as w')
    .innerJoin('outbound_events as e', (join) => join.on('e.id', '=', delivery.event_id))
    .selectAll('w')
    .select([
      'e.id as event_id',
      'e.type as event_type',
      'e.account_id as event_account_id',
      'e.data as event_data',
      'e.occurred_at as event_occurred_at',
    ])
    .where('w.id', '=', delivery.endpoint_id)
    .executeTakeFirst();
  if (row === undefined) return null;
  const { event_id, event_type, event_account_id, event_data, event_occurred_at, ...endpoint } =
    row;
  return {
    delivery,
    endpoint,
    event: {
      id: event_id,
      type: event_type,
      accountId: event_account_id,
      data: event_data,
      occurredAt: event_occurred_at,
    },
  };
}

export interface AttemptResult {
  ok: boolean;
  responseStatus: number | null;
  latencyMs: number;
  error: string | null;
}

/**
 * Records an attempt and what it does to the endpoint, in one transaction. On failure the
 * delivery waits `retryInMs` (null: retries used up → failed). Returns the endpoint when this
 * failure disabled it.
 */
export async function recordAttempt(
  db: Kysely<Database>,
  input: {
    delivery: WebhookDeliveryRow;
    result: AttemptResult;
    at: Date;
    retryInMs: number | null;
    disableAfterMs: number;
    disableAfterFailures: number;
    /** On success, also lease the endpoint's next delivery until then (one commit for both). */
    leaseNextUntil?: Date;
  },
): Promise<{ disabled: WebhookEndpointRow | null; next: WebhookDeliveryRow | undefined }> {
  const { delivery, result, at } = input;
  return db.transaction().execute(async (trx: Transaction<Database>) => {
    const status = result.ok ? 'succeeded' : input.retryInMs === null ? 'failed' : 'pending';
    await trx
      .updateTable('webhook_deliveries')
      .set({
        status,
        lease_until: null,
        last_attempt_at: at,
        response_status: result.responseStatus,
        latency_ms: result.latencyMs,
        error: result.error,
        next_attempt_at:
          status === 'pending' ? new Date(at.getTime() + (input.retryInMs ?? 0)) : at,
      })
      .where('id', '=', delivery.id)
      .where('status', '=', 'pending')
      .execute();
    if (result.ok) {
      await trx
        .updateTable('webhook_endpoints')
        .set({ consecutive_failures: 0, failing_since: null })
        .where('id', '=', delivery.endpoint_id)
        .where('consecutive_failures', '>', 0)
        .execute();
      const next =
        input.leaseNextUntil === undefined
          ? undefined
          : await leaseNext(trx, delivery.endpoint_id, at, input.leaseNextUntil);
      return { disabled: null, next };
    }
    const endpoint = await trx
      .updateTable('webhook_endpoints')
      .set((eb) => ({
        consecutive_failures: eb('consecutive_failures', '+', 1),
        failing_since: eb.fn.coalesce('failing_since', eb.val(at)),
      }))
      .where('id', '=', delivery.endpoint_id)
      .returningAll()
      .executeTakeFirst();
    if (
      endpoint === undefined ||
      !endpoint.enabled ||
      endpoint.consecutive_failures < input.disableAfterFailures ||
      at.getTime() - (endpoint.failing_since ?? at).getTime() < input.disableAfterMs
    ) {
      return { disabled: null, next: undefined };
    }
    const disabled = await trx
      .updateTable('webhook_endpoints')
      .set({
        enabled: false,
        disabled_reason: `${endpoint.consecutive_failures} consecutive failed deliveries since ${endpoint.failing_since?.toISOString()}`,
        updated_at: at,
      })
      .where('id', '=', endpoint.id)
      .where('enabled', '=', true)
      .returningAll()
      .executeTakeFirst();
    return { disabled: disabled ?? null, next: undefined };
  });
}

/** An event made for one endpoint only (send test event): stored fanned out, plus its delivery. */
export async function insertDirectDelivery(
  db: Kysely<Database>,
  input: {
    endpointId: string;
    event: { id: string; type: string; accountId: string | null; key: string; data: unknown };
    at: Date;
  },
): Promise<WebhookDeliveryRow> {
  return db.transaction().execute(async (trx) => {
    const { event, at } = input;
    await trx
      .insertInto('outbound_events')
      .values({
        id: event.id,
        type: event.type,
        account_id: event.accountId,
        key: event.key,
        data: JSON.stringify(event.data),
        occurred_at: at,
        fanned_out_at: at,
      })
      .execute();
    const row = await insertDelivery(trx, input.endpointId, event.id, at);
    await notifyWebhooks(trx);
    return row;
  });
}

/** A new delivery of an event already delivered (manual resend): last in the endpoint's queue. */
export async function insertDelivery(
  db: Kysely<Database>,
  endpointId: string,
  eventId: string,
  at: Date,
): Promise<WebhookDeliveryRow> {
  return db
    .insertInto('webhook_deliveries')
    .values({
      id: newId('whd'),
      endpoint_id: endpointId,
      event_id: eventId,
      status: 'pending',
      next_attempt_at: at,
      created_at: at,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export interface DeliveryListRow extends WebhookDeliveryRow {
  event_type: string;
}

/** The delivery log of an endpoint, newest first, after `beforeSeq` when paging. */
export async function listDeliveries(
  db: Kysely<Database>,
  endpointId: string,
  limit: number,
  beforeSeq: string | null,
): Promise<DeliveryListRow[]> {
  let query = db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('outbound_events as e', 'e.id', 'd.event_id')
    .selectAll('d')
    .select('e.type as event_type')
    .where('d.endpoint_id', '=', endpointId)
    .orderBy('d.seq', 'desc')
    .limit(limit);
  if (beforeSeq !== null) query = query.where('d.seq', '<', beforeSeq);
  return query.execute();
}

export async function findDelivery(
  db: Kysely<Database>,
  id: string,
): Promise<DeliveryListRow | undefined> {
  return db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('outbound_events as e', 'e.id', 'd.event_id')
    .selectAll('d')
    .select('e.type as event_type')
    .where('d.id', '=', id)
    .executeTakeFirst();
}

export interface Backlog {
  unfannedEvents: number;
  pendingDeliveries: number;
  oldestPendingAt: Date | null;
  failingEndpoints: number;
  disabledEndpoints: number;
}

export async function readBacklog(db: Kysely<Database>): Promise<Backlog> {
  const result = await sql<{
    unfanned: string;
    pending: string;
    oldest: Date | null;
    failing: string;
    disabled: string;
  }>`select
      (select count(*) from outbound_events where fanned_out_at is null) as unfanned,
      (select count(*) from webhook_deliveries where status = 'pending') as pending,
      (select min(created_at) from webhook_deliveries where status = 'pending') as oldest,
      (select count(*) from webhook_endpoints where enabled and consecutive_failures > 0) as failing,
      (select count(*) from webhook_endpoints where not enabled) as disabled`.execute(db);
  const row = result.rows[0]!;
  return {
    unfannedEvents: Number(row.unfanned),
    pendingDeliveries: Number(row.pending),
    oldestPendingAt: row.oldest === null ? null : new Date(row.oldest),
    failingEndpoints: Number(row.failing),
    disabledEndpoints: Number(row.disabled),
  };
}
