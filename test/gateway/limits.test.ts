// Front-door limits from the account's plan, overridden per key, the settings as defaults;
// the IETF RateLimit fields on every answer and Retry-After with the JSON error on 429; and
// the routes that set and read them (operators set, a key's owner reads).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { adminKey, bearer, call, issueKey } from '../support/credentials.ts';
import { startFakeGateway } from '../support/fake-gateway.ts';
import type { FakeGateway } from '../support/fake-gateway.ts';
import { newAccount } from '../support/fixtures.ts';
import { eventually } from '../support/eventually.ts';

let t: TestApp;
let fake: FakeGateway;
let admin: string;

// Settings (the defaults): generous, so only what a plan or an override sets is reached.
const DEFAULT_KEY_RATE = 50;

beforeAll(async () => {
  fake = await startFakeGateway();
  t = await startTestApp({
    env: {
      GATEWAY_URL: fake.url,
      GATEWAY_KEY_RATE: String(DEFAULT_KEY_RATE),
      GATEWAY_ACCOUNT_RATE: '0',
      GATEWAY_KEY_CONCURRENCY: '0',
      GATEWAY_ACCOUNT_CONCURRENCY: '0',
      BILLING_AUTO_CLOSE: 'false',
    },
  });
  admin = (await adminKey(t)).secret;
});
afterAll(async () => {
  await t?.close();
  await fake?.close();
});

const image = { prompt: 'a lighthouse', model_id: 'sdxl', width: 64, height: 64 };
const generate = (secret: string) =>
  call(t, 'POST', '/text-to-image', { headers: bearer(secret), body: image });
const month = () => t.clock().toISOString().slice(0, 7);

async function planWith(id: string, limits: unknown) {
  const created = await call(t, 'POST', '/v1/plans', {
    headers: bearer(admin),
    body: { id, name: id, limits },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body;
}

async function subscribedKey(planId: string) {
  const account = await newAccount(t);
  const subscribed = await call(t, 'PUT', `/v1/accounts/${account}/subscription`, {
    headers: bearer(admin),
    body: { plan_id: planId, effective_month: month() },
  });
  expect(subscribed.status, JSON.stringify(subscribed.body)).toBe(200);
  const key = await issueKey(t, account, { scopes: ['gateway'] });
  return { account, key };
}

describe('limits per plan, per key, and the RateLimit fields', () => {
  it('two plans give their keys different limits (RateLimit-Limit is the plan burst)', async () => {
    await planWith('limits-small', { key: { rate: 1, burst: 2 } });
    await planWith('limits-large', { key: { rate: 5, burst: 9 } });
    const small = await subscribedKey('limits-small');
    const large = await subscribedKey('limits-large');
    await t.app.billing.spendGate.reload(); // the subscriptions, without waiting for NOTIFY

    const first = await generate(large.key.secret);
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit-limit')).toBe('9');
    // A fresh bucket holds the burst; this request took one token.
    expect(first.headers.get('ratelimit-remaining')).toBe('8');
    expect(Number(first.headers.get('ratelimit-reset'))).toBeGreaterThanOrEqual(1);

    // The small plan: two at once, then 429 with Retry-After and the documented body.
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await generate(small.key.secret));
    expect(answers[0]!.headers.get('ratelimit-limit')).toBe('2');
    const refused = answers.find((a) => a.status === 429);
    // Three requests within a second of each other against a bucket of 2 at 1/s: unless
    // the machine stalled for a second between them, the third is refused.
    if (refused !== undefined) {
      expect(refused.body).toEqual({
        error: 'TooManyRequests',
        message: 'More than 1 requests per second per key; retry after 1 s',
        limit: 'rate',
        scope: 'key',
      });
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(refused.headers.get('ratelimit-limit')).toBe('2');
      expect(refused.headers.get('ratelimit-remaining')).toBe('0');
    }

    // Both read their effective limits; the settings fill what the plan leaves unset.
    const shown = await call(t, 'GET', `/v1/keys/${small.key.key.id}/limits`, {
      headers: bearer((await issueKey(t, small.account)).secret),
    });
    expect(shown.status).toBe(200);
    expect(shown.body).toEqual({
      key_id: small.key.key.id,
      account_id: small.account,
      key: { rate: 1, burst: 2, concurrency: 0 },
      account: { rate: 0, burst: 0, concurrency: 0 },
      override: { rate: null, burst: null, concurrency: null },
      replicas: 1,
    });
  });

  it('an operator overrides one key; the key is refused past its own burst', async () => {
    await planWith('limits-override', { key: { rate: 5, burst: 9 } });
    const { account, key } = await subscribedKey('limits-override');
    const other = await issueKey(t, account, { scopes: ['gateway'] });
    await t.app.billing.spendGate.reload();

    const set = await call(t, 'PUT', `/v1/keys/${key.key.id}/limits`, {
      headers: bearer(admin),
      body: { rate: 1, burst: 1 },
    });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body).toEqual({
      key_id: key.key.id,
      account_id: account,
      override: { rate: 1, burst: 1, concurrency: null },
    });
    const first = await generate(key.secret);
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit-limit')).toBe('1');
    expect(first.headers.get('ratelimit-remaining')).toBe('0');
    // The account's other key keeps the plan's limits.
    expect((await generate(other.secret)).headers.get('ratelimit-limit')).toBe('9');

    // The account itself may read, not set, its key's limits.
    const own = (await issueKey(t, account)).secret;
    const read = await call(t, 'GET', `/v1/keys/${key.key.id}/limits`, { headers: bearer(own) });
    expect(read.body.key).toEqual({ rate: 1, burst: 1, concurrency: 0 });
    expect(read.body.override).toEqual({ rate: 1, burst: 1, concurrency: null });
    const refused = await call(t, 'PUT', `/v1/keys/${key.key.id}/limits`, {
      headers: bearer(own),
      body: { rate: 1000 },
    });
    expect(refused.status).toBe(403);
    // Another account's key is not confirmed to exist.
    const stranger = (await issueKey(t, await newAccount(t))).secret;
    const hidden = await call(t, 'GET', `/v1/keys/${key.key.id}/limits`, {
      headers: bearer(stranger),
    });
    expect(hidden.status).toBe(404);

    // Clearing the override (all null) returns the key to its plan.
    const cleared = await call(t, 'PUT', `/v1/keys/${key.key.id}/limits`, {
      headers: bearer(admin),
      body: {},
    });
    expect(cleared.body.override).toEqual({ rate: null, burst: null, concurrency: null });
    await eventually(
      async () => (await generate(key.secret)).headers.get('ratelimit-limit') === '9',
      { what: 'the cleared override to reach the front door' },
    );
  });

  it('a change to a plan reaches the front door through NOTIFY', async () => {
    await planWith('limits-changing', { key: { rate: 2, burst: 3 } });
    const { key } = await subscribedKey('limits-changing');
    await t.app.billing.spendGate.reload();
    expect((await generate(key.secret)).headers.get('ratelimit-limit')).toBe('3');
    const changed = await call(t, 'PUT', '/v1/plans/limits-changing/limits', {
      headers: bearer(admin),
      body: { key: { rate: 4, burst: 7 } },
    });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    expect(changed.body.limits.key).toEqual({ rate: 4, burst: 7, concurrency: null });
    await eventually(
      async () => (await generate(key.secret)).headers.get('ratelimit-limit') === '7',
      { what: 'the new plan limits to reach the front door' },
    );
  });

  it('without a plan the settings apply (burst twice the rate)', async () => {
    const account = await newAccount(t);
    const key = await issueKey(t, account, { scopes: ['gateway'] });
    const answer = await generate(key.secret);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('ratelimit-limit')).toBe(String(DEFAULT_KEY_RATE * 2));
  });

  it('refuses hostile limits with 400 and writes nothing', async () => {
    await planWith('limits-hostile', { key: { rate: 3 } });
    const bad = [
      { key: { rate: -1 } },
      { key: { rate: 1.5 } },
      { key: { rate: '10' } },
      { key: { burst: 0 } },
      { key: { rate: 1e12 } },
      { key: { rate: 1, extra: 1 } },
      { keys: {} },
      [],
      null,
    ];
    for (const body of bad) {
      const answer = await call(t, 'PUT', '/v1/plans/limits-hostile/limits', {
        headers: bearer(admin),
        body,
      });
      expect(answer.status, JSON.stringify(body)).toBe(400);
      // A JSON value that is not an object is a BadRequest; a wrong field an InvalidRequest.
      expect(['InvalidRequest', 'BadRequest']).toContain(answer.body.error);
    }
    const plan = await call(t, 'GET', '/v1/plans/limits-hostile', { headers: bearer(admin) });
    expect(plan.body.limits.key).toEqual({ rate: 3, burst: null, concurrency: null });

    const missing = await call(t, 'PUT', '/v1/plans/no-such-plan/limits', {
      headers: bearer(admin),
      body: {},
    });
    expect(missing.status).toBe(404);

    const account = await newAccount(t);
    const key = await issueKey(t, account, { scopes: ['gateway'] });
    for (const body of [{ rate: -5 }, { concurrency: 'many' }, { burst: 0 }, { rate: 1, x: 2 }]) {
      const answer = await call(t, 'PUT', `/v1/keys/${key.key.id}/limits`, {
        headers: bearer(admin),
        body,
      });
      expect(answer.status, JSON.stringify(body)).toBe(400);
    }
    const unknown = await call(t, 'PUT', '/v1/keys/key_0000000000000000000000/limits', {
      headers: bearer(admin),
      body: { rate: 1 },
    });
    expect(unknown.status).toBe(404);
    const shown = await call(t, 'GET', `/v1/keys/${key.key.id}/limits`, {
      headers: bearer(admin),
    });
    expect(shown.body.override).toEqual({ rate: null, burst: null, concurrency: null });
  });
});
