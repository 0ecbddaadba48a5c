import type { ColumnType, Generated, Selectable } from 'kysely';

export interface OutboundEventsTable {
  id: string;
  // bigint identity: pg returns it as a string.
  seq: ColumnType<string, never, never>;
  type: string;
  account_id: string | null;
  key: string;
  data: ColumnType<Record<string, unknown>, string, never>;
  occurred_at: Date;
  /** When the event became delivery rows; null until then. */
  fanned_out_at: Date | null;
}

export type OutboundEventRow = Selectable<OutboundEventsTable>;

export interface WebhookEndpointsTable {
  id: string;
  /** Null: a deployment (operators') endpoint. */
  account_id: string | null;
  all_accounts: Generated<boolean>;
  url: string;
  description: Generated<string>;
  event_types: ColumnType<string[], string, string>;
  secret_sealed: string;
  previous_secret_sealed: string | null;
  previous_secret_expires_at: Date | null;
  enabled: boolean;
  disabled_reason: string | null;
  consecutive_failures: Generated<number>;
  failing_since: Date | null;
  created_at: Date;
  updated_at: Date;
}

export type WebhookEndpointRow = Selectable<WebhookEndpointsTable>;

export type DeliveryStatus = 'pending' | 'succeeded' | 'failed';

export interface WebhookDeliveriesTable {
  id: string;
  seq: ColumnType<string, never, never>;
  endpoint_id: string;
  event_id: string;
  status: DeliveryStatus;
  attempts: Generated<number>;
  next_attempt_at: Date;
  lease_until: Date | null;
  last_attempt_at: Date | null;
  response_status: number | null;
  latency_ms: number | null;
  error: string | null;
  created_at: Date;
}

export type WebhookDeliveryRow = Selectable<WebhookDeliveriesTable>;

/** Alert e-mails an account opted out of (db/migrations/0042_create_alert_email_opt_outs.ts). */
export interface AlertEmailOptOutsTable {
  account_id: string;
  event_type: string;
  created_at: Date;
}
