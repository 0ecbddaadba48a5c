// The sender: fans the outbox out into deliveries, then sends each endpoint's deliveries one at a
// time, in order, signed per Standard Webhooks (the `standardwebhooks` library). Any number of
// replicas run it: the fan-out is serialised by an advisory lock, and a delivery is sent by the
// replica holding its lease (which outlives the request timeout, so a replica killed mid-send
// only delays it until the lease runs out — then another sends it again, with the same
// webhook-id for the receiver to dedupe on).
import { Webhook } from 'standardwebhooks';
import { Agent, request } from 'undici';
import type { Kysely } from 'kysely';
import type { Clock } from '../platform/clock.ts';
import type { Database } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import type { FannedEvent, AttemptResult } from './queries.ts';
import { fanOut, leaseDue, loadContext, recordAttempt } from './queries.ts';
import type { WebhookDeliveryRow, WebhookEndpointRow } from './table.ts';
import { assertDeliverable, guardedLookup } from './urls.ts';
import type { UrlPolicy } from './urls.ts';

/**
 * Waits before each retry, after the first attempt fails (Standard Webhooks' and Svix's
 * schedule): 8 attempts over about 28 hours. Each wait is jittered by ±10 %.
 */
export const RETRY_SCHEDULE_MS = [
  5_000,
  5 * 60_000,
  30 * 60_000,
  2 * 3_600_000,
  5 * 3_600_000,
  10 * 3_600_000,
  10 * 3_600_000,
] as const;

/** The wait after failed attempt number `attempts` (1-based), or null when none is left. */
export function retryDelay(attempts: number, random: () => number = Math.random): number | null {
  const base = RETRY_SCHEDULE_MS[attempts - 1];
  if (base === undefined) return null;
  return Math.round(base * (0.9 + 0.2 * random()));
}

// Responses are read up to this much (and thrown away): a receiver answers, it does not stream.
const MAX_RESPONSE_BYTES = 64 * 1024;
const BATCH = 50;
const FANOUT_BATCH = 500;

export interface SenderDeps {
  db: Kysely<Database>;
  log: Logger;
  clock: Clock;
  policy: UrlPolicy;
  timeoutMs: number;
  disableAfterMs: number;
  disableAfterFailures: number;
  /** Reads an endpoint's signing secrets (the current one, and the previous while valid). */
  secretsOf(endpoint: WebhookEndpointRow, at: Date): string[];
  /** Called with the events just fanned out (e-mail alerts). */
  onFannedOut(events: readonly FannedEvent[]): void;
  /** Called when repeated failure disabled an endpoint. */
  onDisabled(endpoint: WebhookEndpointRow): void;
  onAttempt(result: 'succeeded' | 'retrying' | 'failed', latencyMs: number): void;
}

export interface Sender {
  /** Runs until nothing is due; concurrent calls coalesce into one more pass. */
  run(): Promise<void>;
  close(): Promise<void>;
}

/** The body every endpoint gets: the event, as documented in docs/webhooks.md. */
export function payloadOf(event: FannedEvent): string {
  return JSON.stringify({
    id: event.id,
    type: event.type,
    timestamp: event.occurredAt.toISOString(),
    account_id: event.accountId,
    data: event.data,
  });
}

/** Standard Webhooks headers; several secrets (during a rotation) sign side by side. */
export function signedHeaders(
  secrets: readonly string[],
  eventId: string,
  sentAt: Date,
  payload: string,
): Record<string, string> {
  // The signature timestamp is seconds; sign the same whole second the header says.
  const at = new Date(Math.floor(sentAt.getTime() / 1000) * 1000);
  return {
    'content-type': 'application/json',
    'user-agent': 'tollhouse-webhooks/1',
    'webhook-id': eventId,
    'webhook-timestamp': String(at.getTime() / 1000),
    'webhook-signature': secrets.map((s) => new Webhook(s).sign(eventId, at, payload)).join(' '),
  };
}

export function createSender(deps: SenderDeps): Sender {
  const { db, log, clock } = deps;
  // Lease = the longest an attempt can take, plus room for recording it.
  const leaseMs = deps.timeoutMs + 30_000;
  const agent = new Agent({
    connect: { lookup: guardedLookup(deps.policy), timeout: deps.timeoutMs },
    headersTimeout: deps.timeoutMs,
    bodyTimeout: deps.timeoutMs,
    connections: 16,
  });
  let running: Promise<void> | null = null;
  let again = false;
  let closed = false;
  const inFlight = new Set<Promise<void>>();

  async function attempt(endpoint: WebhookEndpointRow, event: FannedEvent): Promise<AttemptResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    try {
      const url = new URL(endpoint.url);
      assertDeliverable(url, deps.policy);
      const payload = payloadOf(event);
      // The signature timestamp is the wall clock's: receivers compare it with theirs to refuse
      // replays (a protocol time, like OIDC's), not with anything tollhouse stores.
      const headers = signedHeaders(
        deps.secretsOf(endpoint, clock()),
        event.id,
        new Date(),
        payload,
      );
      const response = await request(url, {
        method: 'POST',
        headers,
        body: payload,
        dispatcher: agent,
        signal: AbortSignal.timeout(deps.timeoutMs),
      });
      let read = 0;
      for await (const chunk of response.body) {
        read += (chunk as Buffer).length;
        if (read > MAX_RESPONSE_BYTES) {
          response.body.destroy();
          break;
        }
      }
      const ok = response.statusCode >= 200 && response.statusCode < 300;
      return {
        ok,
        responseStatus: response.statusCode,
        latencyMs: elapsed(),
        error: ok ? null : `HTTP ${response.statusCode}`,
      };
    } catch (error) {
      const message = (error as Error).message || String(error);
      return {
        ok: false,
        responseStatus: null,
        latencyMs: elapsed(),
        error: message.slice(0, 300),
      };
    }
  }

  /** Sends `first`, then goes on with its endpoint's queue while deliveries succeed. */
  async function deliver(first: WebhookDeliveryRow): Promise<void> {
    for (let delivery: WebhookDeliveryRow | undefined = first; delivery !== undefined;) {
      delivery = await deliverOne(delivery);
    }
  }

  /** One attempt; on success the endpoint's next delivery, leased, when one is due. */
  async function deliverOne(delivery: WebhookDeliveryRow): Promise<WebhookDeliveryRow | undefined> {
    const context = await loadContext(db, delivery);
    if (context === null) return undefined;
    const result = await attempt(context.endpoint, context.event);
    const retryInMs = result.ok ? null : retryDelay(delivery.attempts);
    const at = clock();
    const { disabled, next } = await recordAttempt(db, {
      delivery,
      result,
      at,
      retryInMs,
      disableAfterMs: deps.disableAfterMs,
      disableAfterFailures: deps.disableAfterFailures,
      ...(closed ? {} : { leaseNextUntil: new Date(at.getTime() + leaseMs) }),
    });
    deps.onAttempt(
      result.ok ? 'succeeded' : retryInMs === null ? 'failed' : 'retrying',
      result.latencyMs,
    );
    if (!result.ok) {
      log.info(
        {
          delivery: delivery.id,
          endpoint: delivery.endpoint_id,
          attempt: delivery.attempts,
          error: result.error,
        },
        'webhook delivery failed',
      );
    }
    if (disabled !== null) {
      log.warn({ endpoint: disabled.id }, 'webhook endpoint disabled after repeated failures');
      deps.onDisabled(disabled);
    }
    return next;
  }

  async function pass(): Promise<void> {
    for (;;) {
      const fanned = await fanOut(db, clock(), FANOUT_BATCH);
      if (fanned !== null && fanned.length > 0) deps.onFannedOut(fanned);
      if (fanned === null || fanned.length < FANOUT_BATCH) break;
    }
    for (;;) {
      if (closed) return;
      const at = clock();
      const leased = await leaseDue(db, at, new Date(at.getTime() + leaseMs), BATCH);
      if (leased.length === 0) return;
      // Different endpoints in parallel; one endpoint's next delivery only after this one.
      const work = Promise.allSettled(leased.map((d) => deliver(d))).then((results) => {
        for (const r of results) {
          if (r.status === 'rejected') log.error({ err: r.reason }, 'webhook delivery crashed');
        }
      });
      inFlight.add(work);
      await work.finally(() => inFlight.delete(work));
    }
  }

  function run(): Promise<void> {
    if (closed) return Promise.resolve();
    if (running !== null) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await pass();
        } while (again && !closed);
      } catch (error) {
        log.warn({ err: error }, 'webhook sender pass failed');
      } finally {
        running = null;
      }
    })();
    return running;
  }

  return {
    run,
    async close() {
      closed = true;
      await running;
      await Promise.allSettled([...inFlight]);
      await agent.close();
    },
  };
}
