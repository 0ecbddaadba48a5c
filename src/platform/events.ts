// Outbound events (issue #19): what a customer's or an operator's webhook endpoints and alert
// e-mails hear about. A capability that changes state publishes the event inside the same
// transaction as the change, so the event exists exactly when the change committed (a durable
// outbox, delivered later by the notifications capability). Every event carries a `key` that
// names the crossing it reports (e.g. `balance.low:<account>:<top-up id>`): publishing the same
// key twice stores one event, so a threshold crossed by many concurrent requests, or seen by
// several replicas, is reported once.
import type { Kysely } from 'kysely';

export const EVENT_TYPES = [
  'spend.threshold_reached',
  'balance.low',
  'balance.depleted',
  'balance.recharged',
  'recharge.failed',
  'statement.closed',
  'key.rotation_due',
  'signer.deposit_low',
  'signer.reserve_low',
  'signer.funding_failed',
  // Sent only by "send test event"; never published by a state change.
  'webhook.test',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface OutboundEvent {
  type: EventType;
  /** The account the event concerns; null for deployment-wide (operator) events. */
  accountId: string | null;
  /** Names the crossing; the outbox stores one event per key. */
  key: string;
  /** The event's payload as delivered (snake_case JSON; money as decimal strings of wei). */
  data: Record<string, unknown>;
}

/** Any capability's Kysely handle or transaction: the outbox is one table in the one database. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyExecutor = Kysely<any>;

export interface EventSink {
  /** Adds the events to the outbox through `db` (pass the caller's transaction). */
  publish(db: AnyExecutor, events: readonly OutboundEvent[]): Promise<void>;
}
