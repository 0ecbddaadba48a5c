// Wire shapes of the metering API.
import { z } from 'zod';
import { isWeiString } from '../platform/money.ts';
import { GROUP_BY } from './queries.ts';
import { UNITS } from './model.ts';
import type { StoredUsageEvent } from './model.ts';

/** The CloudEvents `type` tollhouse ingests; anything else is rejected, not guessed at. */
export const USAGE_EVENT_TYPE = 'tollhouse.usage.v1';
export const MAX_BATCH = 1_000;
// A full batch of typical events is ~0.5 MB; 4 MiB leaves room for large attributes while a
// 10 MB body is refused before it is parsed.
export const INGEST_BODY_LIMIT_BYTES = 4 * 1024 * 1024;
// Clocks drift; an event stamped a little in the future is fine, one far ahead is a bug.
export const FUTURE_TOLERANCE_MS = 5 * 60 * 1000;
export const EARLIEST_EVENT_TIME = Date.parse('2000-01-01T00:00:00Z');

const decimalInteger = z.union([
  z.string().refine(isWeiString, { error: 'expected a non-negative integer in decimal' }),
  z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
]);
const optionalText = (max: number) => z.string().min(1).max(max).nullish();

export const usageData = z.strictObject({
  pipeline: z.string().min(1).max(100),
  model_id: optionalText(200),
  unit: z.enum(UNITS, { error: `expected one of ${UNITS.join(', ')}` }),
  quantity: decimalInteger,
  fee_wei: decimalInteger,
  app_id: optionalText(100),
  key_id: optionalText(100),
  client_id: optionalText(200),
  end_user_id: optionalText(200),
  status: z.number().int().min(100).max(599).nullish(),
  latency_ms: z.number().int().nonnegative().max(2_147_483_647).nullish(),
  attributes: z.record(z.string(), z.unknown()).optional(),
});

export const cloudEvent = z.object({
  specversion: z.literal('1.0', { error: 'expected specversion "1.0"' }),
  id: z.string().min(1).max(200),
  source: z.string().min(1).max(500),
  type: z.literal(USAGE_EVENT_TYPE, { error: `expected type "${USAGE_EVENT_TYPE}"` }),
  subject: z.string().regex(/^acct_[0-9A-Za-z]{1,64}$/, 'expected the paying account id (acct_…)'),
  time: z.iso.datetime({ offset: true, error: 'expected an RFC 3339 time' }),
  datacontenttype: z.literal('application/json').optional(),
  data: usageData,
});

export type CloudEvent = z.output<typeof cloudEvent>;

// ---- the common case of `cloudEvent` without zod's per-call machinery -----------------------
//
// Ingest checks every event of a batch of up to 1,000 against `cloudEvent`; zod's generic
// walk was the largest share of the server's CPU per ingested event (bench/metering-ingest.ts,
// BENCHMARKS.md, metering). `parseCloudEventFast` accepts only events that `cloudEvent` accepts
// too, and returns what `cloudEvent.parse` would; anything else — an invalid event, or a valid
// one in a form it does not handle (a time with an offset, more than millisecond precision, a
// non-plain object) — gives `undefined`, and the caller asks zod, which decides and words the
// error. test/metering/fast-parse.test.ts holds the two to that contract on edge cases.

// RFC 3339 in UTC, as toISOString writes it: a subset of what `z.iso.datetime` accepts.
const UTC_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z$/;
const SUBJECT = /^acct_[0-9A-Za-z]{1,64}$/;
const DATA_KEYS = new Set(Object.keys(usageData.shape));
const UNIT_SET: ReadonlySet<string> = new Set(UNITS);

type Plain = Record<string, unknown>;

function isPlainObject(value: unknown): value is Plain {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  return Object.getPrototypeOf(value) === Object.prototype;
}

function textWithin(value: unknown, max: number): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= max;
}

/** `optionalText(max)`: absent, null, or 1..max characters. */
function optionalTextOk(value: unknown, max: number): boolean {
  return value === undefined || value === null || textWithin(value, max);
}

function intWithin(value: unknown, min: number, max: number): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

function decimalIntegerOk(value: unknown): boolean {
  return typeof value === 'string'
    ? isWeiString(value)
    : intWithin(value, 0, Number.MAX_SAFE_INTEGER);
}

function utcTimeOk(value: unknown): value is string {
  if (typeof value !== 'string' || !UTC_TIME.test(value)) return false;
  // The pattern does not check ranges (month 13, 30 February, hour 24): a date that Date
  // rolls over to another does not write back the same fields.
  const ms = Date.parse(value);
  return !Number.isNaN(ms) && new Date(ms).toISOString().slice(0, 19) === value.slice(0, 19);
}

/** What `cloudEvent.parse(raw)` returns, when `raw` is in the common form; else undefined. */
export function parseCloudEventFast(raw: unknown): CloudEvent | undefined {
  if (!isPlainObject(raw)) return undefined;
  const { specversion, id, source, type, subject, time, datacontenttype, data } = raw;
  if (
    specversion !== '1.0' ||
    type !== USAGE_EVENT_TYPE ||
    !textWithin(id, 200) ||
    !textWithin(source, 500) ||
    typeof subject !== 'string' ||
    !SUBJECT.test(subject) ||
    !utcTimeOk(time) ||
    (datacontenttype !== undefined && datacontenttype !== 'application/json') ||
    !isPlainObject(data)
  ) {
    return undefined;
  }
  for (const key in data) if (!DATA_KEYS.has(key)) return undefined;
  const d = data;
  if (
    !textWithin(d.pipeline, 100) ||
    typeof d.unit !== 'string' ||
    !UNIT_SET.has(d.unit) ||
    !decimalIntegerOk(d.quantity) ||
    !decimalIntegerOk(d.fee_wei) ||
    !optionalTextOk(d.model_id, 200) ||
    !optionalTextOk(d.app_id, 100) ||
    !optionalTextOk(d.key_id, 100) ||
    !optionalTextOk(d.client_id, 200) ||
    !optionalTextOk(d.end_user_id, 200) ||
    !(d.status === undefined || d.status === null || intWithin(d.status, 100, 599)) ||
    !(
      d.latency_ms === undefined ||
      d.latency_ms === null ||
      intWithin(d.latency_ms, 0, 2_147_483_647)
    ) ||
    !(d.attributes === undefined || isPlainObject(d.attributes))
  ) {
    return undefined;
  }
  // The same keys zod's output has: the declared ones that were present (zod drops unknown
  // top-level keys; `data` is strict, so it has no others), values as they came.
  const event: Plain = { specversion, id, source, type, subject, time };
  if ('datacontenttype' in raw) event.datacontenttype = datacontenttype;
  event.data = { ...d };
  return event as CloudEvent;
}

export const ingestBody = z
  .array(z.unknown())
  .min(1, 'send at least one event')
  .max(MAX_BATCH, `send at most ${MAX_BATCH} events per batch`);

export const ingestResult = z.object({
  id: z.string().nullable(),
  source: z.string().nullable(),
  status: z.enum(['accepted', 'duplicate', 'rejected']),
  reason: z.string().optional(),
});

export const ingestResponse = z.object({
  accepted: z.number().int(),
  duplicates: z.number().int(),
  rejected: z.number().int(),
  results: z.array(ingestResult),
});

const time = z.iso.datetime({ offset: true, error: 'expected an RFC 3339 time' });
const id = z.string().min(1).max(200);

export const usageQuery = z.object({
  from: time.optional(),
  to: time.optional(),
  account_id: id.optional(),
  app_id: id.optional(),
  end_user_id: id.optional(),
  pipeline: id.optional(),
  model_id: id.optional(),
});

export const summaryQuery = usageQuery.extend({
  group_by: z
    .string()
    .transform((v) => v.split(',').filter(Boolean))
    .pipe(z.array(z.enum(GROUP_BY, { error: `expected a list of ${GROUP_BY.join(', ')}` })).max(3))
    .optional(),
});

export const eventsQuery = usageQuery.extend({
  cursor: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

const wei = z.string().describe('wei, decimal');

export const summaryResponse = z.object({
  from: z.string(),
  to: z.string(),
  group_by: z.array(z.string()),
  totals: z.object({
    events: z.number().int(),
    failed_events: z.number().int(),
    fee_wei: wei,
    quantities: z.array(z.object({ unit: z.string(), quantity: z.string() })),
  }),
  rows: z.array(
    z.object({
      day: z.string().nullable().optional(),
      account: z.string().nullable().optional(),
      app: z.string().nullable().optional(),
      end_user: z.string().nullable().optional(),
      pipeline: z.string().nullable().optional(),
      model: z.string().nullable().optional(),
      unit: z.string(),
      events: z.number().int(),
      failed_events: z.number().int(),
      quantity: z.string(),
      fee_wei: wei,
    }),
  ),
});

export const eventResponse = z.object({
  id: z.string(),
  source: z.string(),
  event_id: z.string(),
  occurred_at: z.string(),
  recorded_at: z.string(),
  account_id: z.string(),
  app_id: z.string().nullable(),
  key_id: z.string().nullable(),
  client_id: z.string().nullable(),
  end_user_id: z.string().nullable(),
  pipeline: z.string(),
  model_id: z.string().nullable(),
  unit: z.string(),
  quantity: z.string(),
  fee_wei: wei,
  status: z.number().int().nullable(),
  latency_ms: z.number().int().nullable(),
  attributes: z.record(z.string(), z.unknown()),
});

export const eventsResponse = z.object({
  events: z.array(eventResponse),
  next_cursor: z.string().nullable(),
});

/** The one view of a stored usage event: `GET /v1/usage/events` and the JSON Lines usage export. */
export function toUsageEventView(e: StoredUsageEvent): z.infer<typeof eventResponse> {
  return {
    id: e.id.toString(),
    source: e.source,
    event_id: e.eventId,
    occurred_at: e.occurredAt.toISOString(),
    recorded_at: e.recordedAt.toISOString(),
    account_id: e.accountId,
    app_id: e.appId,
    key_id: e.keyId,
    client_id: e.clientId,
    end_user_id: e.endUserId,
    pipeline: e.pipeline,
    model_id: e.modelId,
    unit: e.unit,
    quantity: e.quantity.toString(),
    fee_wei: e.feeWei.toString(),
    status: e.status,
    latency_ms: e.latencyMs,
    attributes: e.attributes,
  };
}
