// The ingest fast path (`parseCloudEventFast`) against the schema it stands in for: on every
// input it either gives up (undefined: zod decides) or returns exactly what `cloudEvent.parse`
// returns. Edge values at every field's limits, wrong types, extra keys and time forms.
import { describe, expect, it } from 'vitest';
import { cloudEvent, parseCloudEventFast } from '../../src/metering/index.ts';

const base = () => ({
  specversion: '1.0',
  id: 'evt-1',
  source: 'collector://a',
  type: 'tollhouse.usage.v1',
  subject: 'acct_abc123',
  time: '2026-10-01T12:34:56.789Z',
  data: {
    pipeline: 'text-to-image',
    model_id: 'sdxl',
    unit: 'pixels',
    quantity: '1048576',
    fee_wei: '123456789012345678901234567890',
    app_id: 'app_1',
    key_id: 'key_1',
    client_id: 'client_1',
    end_user_id: 'user-1',
    status: 200,
    latency_ms: 1234,
    attributes: { bytes: 10, nested: { a: [1, 'b'] } },
  },
});

const TIMES = [
  '2026-10-01T00:00:00Z',
  '2026-10-01T00:00:00.1Z',
  '2026-10-01T00:00:00.12Z',
  '2026-10-01T00:00:00.123456Z',
  '2026-10-01T00:00:00.123456789Z',
  '2026-10-01T00:00:00+01:00',
  '2026-10-01T00:00:00-00:00',
  '2026-10-01t00:00:00z',
  '2026-10-01 00:00:00Z',
  '2026-10-01T00:00Z',
  '2026-10-01',
  '2026-02-29T00:00:00Z',
  '2024-02-29T00:00:00Z',
  '2026-04-31T00:00:00Z',
  '2026-13-01T00:00:00Z',
  '2026-00-01T00:00:00Z',
  '2026-10-00T00:00:00Z',
  '2026-10-01T24:00:00Z',
  '2026-10-01T23:60:00Z',
  '2026-10-01T23:59:60Z',
  '0000-01-01T00:00:00Z',
  '9999-12-31T23:59:59.999Z',
  '+002026-10-01T00:00:00Z',
  '2026-10-01T00:00:00.Z',
  ' 2026-10-01T00:00:00Z',
  '2026-10-01T00:00:00Z\n',
];

const VALUES: unknown[] = [
  undefined,
  null,
  '',
  'x',
  'a'.repeat(64),
  'a'.repeat(65),
  'a'.repeat(100),
  'a'.repeat(101),
  'a'.repeat(200),
  'a'.repeat(201),
  'a'.repeat(500),
  'a'.repeat(501),
  '\u00e9'.repeat(200),
  0,
  -1,
  1.5,
  99,
  100,
  599,
  600,
  2_147_483_647,
  2_147_483_648,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 2,
  Number.NaN,
  '0',
  '01',
  '-1',
  '1e3',
  ' 1',
  '1'.repeat(78),
  '1'.repeat(79),
  true,
  [],
  ['a'],
  {},
  { a: 1 },
  Object.create(null) as object,
  '1.0',
  'tollhouse.usage.v1',
  'application/json',
  'text/plain',
  'acct_',
  `acct_${'a'.repeat(64)}`,
  `acct_${'a'.repeat(65)}`,
  'acct_a-b',
  'ACCT_abc',
  'tokens',
  'pixels',
  'Tokens',
  'bytes',
  ...TIMES,
];

function variants(): unknown[] {
  const out: unknown[] = [base(), null, 'event', [], [base()], 42];
  const top = Object.keys(base()).concat(['datacontenttype', 'extra']);
  for (const key of top) {
    for (const value of VALUES) {
      const e: Record<string, unknown> = base();
      if (value === undefined) delete e[key];
      else e[key] = value;
      out.push(e);
    }
  }
  const dataKeys = Object.keys(base().data).concat(['extra', '__proto__x']);
  for (const key of dataKeys) {
    for (const value of VALUES) {
      const e = base();
      const data: Record<string, unknown> = e.data;
      if (value === undefined) delete data[key];
      else data[key] = value;
      out.push(e);
    }
  }
  // The smallest valid event, and numbers for the decimal fields.
  out.push({
    specversion: '1.0',
    id: 'e',
    source: 's',
    type: 'tollhouse.usage.v1',
    subject: 'acct_a',
    time: '2026-10-01T00:00:00Z',
    data: { pipeline: 'llm', unit: 'tokens', quantity: 1, fee_wei: 0 },
  });
  return out;
}

describe('parseCloudEventFast', () => {
  it('returns what cloudEvent.parse returns, or leaves the event to zod', () => {
    let fast = 0;
    let zodOnly = 0;
    for (const raw of variants()) {
      const slow = cloudEvent.safeParse(raw);
      const quick = parseCloudEventFast(raw);
      if (quick === undefined) {
        if (slow.success) zodOnly++;
        continue;
      }
      fast++;
      expect(slow.success, JSON.stringify(raw)).toBe(true);
      expect(quick, JSON.stringify(raw)).toStrictEqual(slow.data);
    }
    // Most inputs that zod accepts take the fast path; the rest are the forms it leaves to zod
    // (time offsets and sub-millisecond precision, null-prototype attributes).
    expect(fast).toBeGreaterThan(300);
    expect(zodOnly).toBeLessThan(fast / 10);
  });

  it('takes the fast path for the forms collectors send', () => {
    const minimal = {
      specversion: '1.0',
      id: 'e',
      source: 's',
      type: 'tollhouse.usage.v1',
      subject: 'acct_a',
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      data: { pipeline: 'llm', unit: 'tokens', quantity: 1, fee_wei: '1', model_id: null },
    };
    expect(parseCloudEventFast(base())).toStrictEqual(cloudEvent.parse(base()));
    expect(parseCloudEventFast(minimal)).toStrictEqual(cloudEvent.parse(minimal));
  });
});
