import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { adminKey, bearer, call, issueKey } from '../support/credentials.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { newAccount } from '../support/fixtures.ts';

const validate = createResponseValidator();
let t: TestApp;
let writer: string; // usage:write key
let accountA: string;
let accountB: string;
let readerA: string; // usage:read key of account A
let admin: string;

beforeAll(async () => {
  t = await startTestApp();
  const operator = await newAccount(t);
  // A collector writing for many accounts is an operator's (a non-operator writes only its own).
  writer = (await issueKey(t, operator, { scopes: ['admin'] })).secret;
  accountA = await newAccount(t);
  accountB = await newAccount(t);
  readerA = (await issueKey(t, accountA, { scopes: ['usage:read'] })).secret;
  admin = (await adminKey(t)).secret;
});
afterAll(async () => {
  await t.close();
});

let n = 0;
function cloudEvent(overrides: Record<string, unknown> = {}, data: Record<string, unknown> = {}) {
  n++;
  return {
    specversion: '1.0',
    id: `ev-${n}`,
    source: 'urn:collector:test',
    type: 'tollhouse.usage.v1',
    subject: accountA,
    time: '2026-11-10T12:30:00Z',
    data: {
      pipeline: 'text-to-image',
      model_id: 'sdxl',
      unit: 'pixels',
      quantity: 1048576,
      fee_wei: '1000000000000000001',
      ...data,
    },
    ...overrides,
  };
}

function ingest(events: unknown, key = writer, contentType = 'application/cloudevents-batch+json') {
  return call(t, 'POST', '/v1/usage/events', {
    headers: bearer(key, { 'content-type': contentType }),
    raw: typeof events === 'string' ? events : JSON.stringify(events),
  });
}

describe('POST /v1/usage/events', () => {
  it('accepts a batch after commit and answers each event; a replay is all duplicates', async () => {
    const batch = [
      cloudEvent(),
      cloudEvent({}, { pipeline: 'llm', unit: 'tokens', quantity: '512', fee_wei: 7 }),
    ];
    const first = await ingest(batch);
    expect(first.status).toBe(200);
    expect(validate('POST', '/v1/usage/events', 200, first.body)).toBeNull();
    expect(first.body).toMatchObject({ accepted: 2, duplicates: 0, rejected: 0 });
    const replay = await ingest(batch, writer, 'application/json');
    expect(replay.body).toMatchObject({ accepted: 0, duplicates: 2, rejected: 0 });
    expect(replay.body.results.map((r: { status: string }) => r.status)).toEqual([
      'duplicate',
      'duplicate',
    ]);
  });

  it('rejects bad events with reasons without spoiling the rest of the batch', async () => {
    const good = cloudEvent();
    const batch = [
      good,
      { ...cloudEvent(), data: { pipeline: 'llm', unit: 'tokens', quantity: 1 } }, // no fee
      cloudEvent({}, { quantity: -5 }),
      cloudEvent({}, { fee_wei: '1.5' }),
      cloudEvent({}, { fee_wei: 1e21 }),
      cloudEvent({}, { unit: 'furlongs' }),
      cloudEvent({ time: '2099-01-01T00:00:00Z' }),
      cloudEvent({ subject: 'acct_doesnotexist' }),
      cloudEvent({ type: 'com.example.other' }),
      cloudEvent({}, { surprise: true }),
      'not an event',
      null,
    ];
    const response = await ingest(batch);
    expect(response.status).toBe(200);
    expect(validate('POST', '/v1/usage/events', 200, response.body)).toBeNull();
    const results = response.body.results as Array<{ status: string; reason?: string }>;
    expect(results[0]!.status).toBe('accepted');
    expect(
      results.slice(1).every((r) => r.status === 'rejected' && typeof r.reason === 'string'),
    ).toBe(true);
    expect(results.map((r) => r.reason?.split(':')[0])).toEqual([
      undefined,
      'data.fee_wei',
      'data.quantity',
      'data.fee_wei',
      'data.fee_wei',
      'data.unit',
      'time',
      'subject',
      'type',
      'data',
      'event',
      'event',
    ]);
    expect(response.body).toMatchObject({ accepted: 1, rejected: 11 });
  });

  it('refuses malformed, oversized and overlong batches as a whole', async () => {
    expect((await ingest('{"not": "an array"}')).status).toBe(400);
    expect((await ingest('[{"specversion": ')).body).toMatchObject({ error: 'BadRequest' });
    expect((await ingest([])).status).toBe(400);
    const tooMany = await ingest(Array.from({ length: 1001 }, () => cloudEvent()));
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.message).toMatch(/at most 1000 events/);
    const huge = await ingest(
      `[${JSON.stringify(cloudEvent({}, { attributes: { blob: 'x'.repeat(10 * 1024 * 1024) } }))}]`,
    );
    expect(huge.status).toBe(413);
    expect(huge.body.error).toBe('PayloadTooLarge');
    const text = await call(t, 'POST', '/v1/usage/events', {
      headers: bearer(writer, { 'content-type': 'text/plain' }),
      raw: '[]',
    });
    expect(text.status).toBe(415);
  });

  it('requires the usage:write scope', async () => {
    expect((await ingest([cloudEvent()], 'th_sk_nope')).status).toBe(401);
    const noAuth = await call(t, 'POST', '/v1/usage/events', { body: [cloudEvent()] });
    expect(noAuth.status).toBe(401);
    expect(noAuth.body).toEqual({ error: 'Unauthorized', message: 'Invalid API key' });
    const reader = await ingest([cloudEvent()], readerA);
    expect(reader.status).toBe(403);
    expect(validate('POST', '/v1/usage/events', 403, reader.body)).toBeNull();
  });
});

describe('GET /v1/usage and /v1/usage/events', () => {
  beforeAll(async () => {
    const events = [];
    for (let day = 1; day <= 3; day++) {
      events.push(
        cloudEvent(
          { subject: accountA, time: `2026-10-0${day}T08:00:00Z` },
          { fee_wei: '100', quantity: 10 },
        ),
      );
      events.push(
        cloudEvent(
          { subject: accountA, time: `2026-10-0${day}T09:00:00Z` },
          { pipeline: 'llm', unit: 'tokens', fee_wei: '5', quantity: 3, status: 502 },
        ),
      );
      events.push(
        cloudEvent(
          { subject: accountB, time: `2026-10-0${day}T08:00:00Z` },
          { fee_wei: '1000', quantity: 1 },
        ),
      );
    }
    expect((await ingest(events)).body.accepted).toBe(9);
  });

  const october = 'from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z';

  it('gives an account its own totals and breakdowns, exactly', async () => {
    const response = await call(t, 'GET', `/v1/usage?${october}&group_by=day,pipeline`, {
      headers: bearer(readerA),
    });
    expect(response.status).toBe(200);
    expect(validate('GET', '/v1/usage', 200, response.body)).toBeNull();
    expect(response.body.totals).toEqual({
      events: 6,
      failed_events: 3,
      fee_wei: '315',
      quantities: [
        { unit: 'pixels', quantity: '30' },
        { unit: 'tokens', quantity: '9' },
      ],
    });
    expect(response.body.rows).toHaveLength(6);
    expect(response.body.rows[0]).toEqual({
      day: '2026-10-01',
      pipeline: 'llm',
      unit: 'tokens',
      events: 1,
      failed_events: 1,
      quantity: '3',
      fee_wei: '5',
    });
    // Asking for another account's usage is narrowed to one's own.
    const other = await call(t, 'GET', `/v1/usage?${october}&account_id=${accountB}`, {
      headers: bearer(readerA),
    });
    expect(other.body.totals.fee_wei).toBe('315');
  });

  it('gives admins everything, or one account', async () => {
    const all = await call(t, 'GET', `/v1/usage?${october}&group_by=account`, {
      headers: bearer(admin),
    });
    expect(all.body.totals.fee_wei).toBe('3315');
    const b = await call(t, 'GET', `/v1/usage?${october}&account_id=${accountB}`, {
      headers: bearer(admin),
    });
    expect(b.body.totals).toMatchObject({ events: 3, fee_wei: '3000' });
  });

  it('pages through raw events with a cursor', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await call(
        t,
        'GET',
        `/v1/usage/events?${october}&limit=4${cursor ? `&cursor=${cursor}` : ''}`,
        { headers: bearer(readerA) },
      );
      expect(page.status).toBe(200);
      expect(validate('GET', '/v1/usage/events', 200, page.body)).toBeNull();
      seen.push(...page.body.events.map((e: { event_id: string }) => e.event_id));
      expect(page.body.events.every((e: { account_id: string }) => e.account_id === accountA)).toBe(
        true,
      );
      cursor = page.body.next_cursor;
    } while (cursor !== null);
    expect(seen).toHaveLength(6);
    expect(new Set(seen).size).toBe(6);
  });

  it('refuses bad queries with 400 and the failing parameter', async () => {
    for (const query of [
      'group_by=colour',
      'group_by=day,pipeline,model,app',
      'from=yesterday',
      'from=2026-10-02T00:00:00Z&to=2026-10-01T00:00:00Z',
      'from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z',
    ]) {
      const response = await call(t, 'GET', `/v1/usage?${query}`, { headers: bearer(readerA) });
      expect(response.status, query).toBe(400);
      expect(validate('GET', '/v1/usage', 400, response.body)).toBeNull();
    }
    for (const query of ['cursor=%%%', 'cursor=bm90LWEtY3Vyc29y', 'limit=0', 'limit=5000']) {
      const response = await call(t, 'GET', `/v1/usage/events?${query}`, {
        headers: bearer(readerA),
      });
      expect(response.status, query).toBe(400);
    }
    expect((await call(t, 'GET', '/v1/usage')).status).toBe(401);
  });
});
