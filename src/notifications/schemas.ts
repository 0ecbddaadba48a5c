// Request and response shapes of /v1/webhooks (mirrored in openapi.yaml).
import { z } from 'zod';
import { InvalidRequest } from '../platform/errors.ts';
import { EVENT_TYPES } from '../platform/events.ts';
import type { DeliveryListRow } from './queries.ts';
import type { WebhookEndpointRow } from './table.ts';

const endpointId = z
  .string()
  .regex(/^whep_[0-9A-Za-z]{22}$/, 'expected a webhook endpoint id (whep_…)');
const deliveryId = z.string().regex(/^whd_[0-9A-Za-z]{22}$/, 'expected a delivery id (whd_…)');
const accountId = z.string().regex(/^acct_[0-9A-Za-z]{22}$/, 'expected an account id (acct_…)');
// Browsers and proxies commonly stop at 2,048 characters; no webhook URL needs more.
const url = z.string().min(1).max(2048);
const description = z.string().trim().max(200);
// webhook.test is sent only by "send test event"; subscribing to it is meaningless.
const eventTypes = z
  .array(
    z
      .enum(EVENT_TYPES)
      .refine((t) => t !== 'webhook.test', { message: 'webhook.test is sent only on request' }),
  )
  .max(EVENT_TYPES.length)
  .transform((types) => [...new Set(types)]);

export const endpointParams = z.strictObject({ id: endpointId });
export const deliveryParams = z.strictObject({ id: endpointId, delivery_id: deliveryId });

export const createEndpointBody = z.strictObject({
  url,
  description: description.optional(),
  event_types: eventTypes.optional(),
  /** Operators: an account's endpoint (omitted: a deployment endpoint). */
  account_id: accountId.optional(),
  all_accounts: z.boolean().optional(),
});

export const updateEndpointBody = z
  .strictObject({
    url: url.optional(),
    description: description.optional(),
    event_types: eventTypes.optional(),
    enabled: z.boolean().optional(),
  })
  .refine((b) => Object.keys(b).length > 0, { message: 'expected at least one field to change' });

export const listEndpointsQuery = z.strictObject({ account_id: accountId.optional() });

export const listDeliveriesQuery = z.strictObject({
  limit: z
    .string()
    .regex(/^\d{1,9}$/, 'expected a whole number')
    .default('50')
    .transform(Number)
    .pipe(z.int().min(1).max(200)),
  cursor: z.string().min(1).max(200).optional(),
});

export const endpointView = z.object({
  id: z.string(),
  account_id: z.string().nullable(),
  all_accounts: z.boolean(),
  url: z.string(),
  description: z.string(),
  event_types: z.array(z.string()),
  enabled: z.boolean(),
  disabled_reason: z.string().nullable(),
  consecutive_failures: z.number(),
  failing_since: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});

export const endpointWithSecret = endpointView.extend({ secret: z.string() });
export const endpointList = z.object({ endpoints: z.array(endpointView) });

export const deliveryView = z.object({
  id: z.string(),
  endpoint_id: z.string(),
  event_id: z.string(),
  event_type: z.string(),
  status: z.enum(['pending', 'succeeded', 'failed']),
  attempts: z.number(),
  next_attempt_at: z.string().nullable(),
  last_attempt_at: z.string().nullable(),
  response_status: z.number().nullable(),
  latency_ms: z.number().nullable(),
  error: z.string().nullable(),
  created_at: z.string(),
});
export const deliveryList = z.object({
  deliveries: z.array(deliveryView),
  next_cursor: z.string().nullable(),
});

export function toEndpointView(row: WebhookEndpointRow): z.input<typeof endpointView> {
  return {
    id: row.id,
    account_id: row.account_id,
    all_accounts: row.all_accounts,
    url: row.url,
    description: row.description,
    event_types: row.event_types,
    enabled: row.enabled,
    disabled_reason: row.disabled_reason,
    consecutive_failures: row.consecutive_failures,
    failing_since: row.failing_since?.toISOString() ?? null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export function toDeliveryView(row: DeliveryListRow): z.input<typeof deliveryView> {
  return {
    id: row.id,
    endpoint_id: row.endpoint_id,
    event_id: row.event_id,
    event_type: row.event_type,
    status: row.status,
    attempts: row.attempts,
    next_attempt_at: row.status === 'pending' ? row.next_attempt_at.toISOString() : null,
    last_attempt_at: row.last_attempt_at?.toISOString() ?? null,
    response_status: row.response_status,
    latency_ms: row.latency_ms,
    error: row.error,
    created_at: row.created_at.toISOString(),
  };
}

/** Delivery log cursors: the last row's seq, bound to the endpoint. */
export function encodeDeliveryCursor(endpointId: string, seq: string): string {
  return Buffer.from(`whd|${endpointId}|${seq}`, 'utf8').toString('base64url');
}

export function decodeDeliveryCursor(endpointId: string, cursor: string): string {
  const refuse = () => new InvalidRequest('query.cursor: not a cursor returned by this API');
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw refuse();
  const [kind, endpoint, seq, ...rest] = Buffer.from(cursor, 'base64url')
    .toString('utf8')
    .split('|');
  if (kind !== 'whd' || endpoint !== endpointId || rest.length > 0) throw refuse();
  if (seq === undefined || !/^[1-9]\d{0,17}$/.test(seq)) throw refuse();
  if (encodeDeliveryCursor(endpointId, seq) !== cursor) throw refuse();
  return seq;
}
