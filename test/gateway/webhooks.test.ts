// /v1/streams and the go-livepeer webhooks (LIVEPEER.md §5) over real HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookMaxPrice } from '../../src/gateway/index.ts';
import { PaymentRequired } from '../../src/platform/spend.ts';
import type { SpendGate } from '../../src/platform/spend.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { bearer, call, issueKey } from '../support/credentials.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { newAccount } from '../support/fixtures.ts';

const SECRET = 'webhook-secret-0123456789abcdef';
let t: TestApp;
let accountId: string;
let secret: string;
const validator = createResponseValidator();
function validate(method: string, path: string, response: { status: number; body: unknown }) {
  expect(validator(method, path, response.status, response.body)).toBeNull();
}
const refused = new Set<string>();
// Billing's decision is not under test: a gate refusing listed accounts stands in for it.
const spend: SpendGate = {
  assertMaySpend(principal) {
    if (refused.has(principal.accountId)) throw new PaymentRequired('No credit left');
  },
};

beforeAll(async () => {
  t = await startTestApp({
    env: {
      LIVEPEER_WEBHOOK_SECRET: SECRET,
      // The signer's ceiling, answered as the remote-signer webhook's maxPrice: 1200/7 wei.
      SIGNER_MAX_PRICE_PER_UNIT_WEI: '1200',
      SIGNER_MAX_PRICE_PIXELS_PER_UNIT: '7',
    },
    spend,
  });
  accountId = await newAccount(t);
  secret = (await issueKey(t, accountId, { scopes: ['gateway'] })).secret;
});
afterAll(async () => {
  await t?.close();
});

async function createStream(name = 'cam') {
  const response = await call(t, 'POST', '/v1/streams', {
    headers: bearer(secret),
    body: { name },
  });
  expect(response.status).toBe(201);
  validate('POST', '/v1/streams', response);
  return response.body as { id: string; stream_key: string };
}

describe('/v1/streams', () => {
  it('creates, lists and revokes streams; the key is shown once', async () => {
    const created = await createStream('studio');
    expect(created.stream_key).toMatch(/^stk_[0-9A-Za-z]{33}$/);
    const list = await call(t, 'GET', '/v1/streams', { headers: bearer(secret) });
    expect(list.status).toBe(200);
    validate('GET', '/v1/streams', list);
    expect(list.body.streams.map((s: { id: string }) => s.id)).toContain(created.id);
    expect(JSON.stringify(list.body)).not.toContain(created.stream_key);
    const revoked = await call(t, 'DELETE', `/v1/streams/${created.id}`, {
      headers: bearer(secret),
    });
    expect(revoked.status).toBe(200);
    validate('DELETE', '/v1/streams/{id}', revoked);
    expect(revoked.body.revoked_at).not.toBeNull();
    const again = await call(t, 'DELETE', `/v1/streams/${created.id}`, { headers: bearer(secret) });
    expect(again.status).toBe(404);
    validate('DELETE', '/v1/streams/{id}', again);
  });

  it('hostile input: bad JSON, wrong types, huge bodies, unknown ids, wrong auth', async () => {
    for (const body of [
      { raw: '{"name":' },
      { body: { name: 42 } },
      { body: { name: 'a', x: 1 } },
    ]) {
      const response = await call(t, 'POST', '/v1/streams', { headers: bearer(secret), ...body });
      expect(response.status).toBe(400);
      validate('POST', '/v1/streams', response);
    }
    const badId = await call(t, 'DELETE', '/v1/streams/not-an-id', { headers: bearer(secret) });
    expect(badId.status).toBe(400);
    validate('DELETE', '/v1/streams/{id}', badId);
    const huge = await call(t, 'POST', '/v1/streams', {
      headers: bearer(secret),
      body: { name: 'x'.repeat(2 * 1024 * 1024) },
    });
    expect(huge.status).toBe(413);
    const unknown = await call(t, 'DELETE', `/v1/streams/str_${'A'.repeat(22)}`, {
      headers: bearer(secret),
    });
    expect(unknown.status).toBe(404);
    const noAuth = await call(t, 'GET', '/v1/streams');
    expect(noAuth.status).toBe(401);
    expect(noAuth.body).toEqual({ error: 'Unauthorized', message: 'Invalid API key' });
    const usageOnly = await issueKey(t, accountId, { scopes: ['usage:read'] });
    expect(
      (await call(t, 'GET', '/v1/streams', { headers: bearer(usageOnly.secret) })).status,
    ).toBe(403);
    const browser = await issueKey(t, accountId, {
      kind: 'browser',
      allowedOrigins: ['https://app.example'],
      allowedResources: ['live-video-to-video'],
    });
    const fromBrowser = await call(t, 'GET', '/v1/streams', {
      headers: bearer(browser.secret, { origin: 'https://app.example' }),
    });
    expect(fromBrowser.status).toBe(403);
    expect(fromBrowser.body.rule).toBe('browser-key-scope');
    // Another account's stream is not found, not revealed.
    const created = await createStream();
    const other = await issueKey(t, await newAccount(t), { scopes: ['gateway'] });
    const foreign = await call(t, 'DELETE', `/v1/streams/${created.id}`, {
      headers: bearer(other.secret),
    });
    expect(foreign.status).toBe(404);
  });
});

describe('go-livepeer webhooks', () => {
  it('refuse callers without the shared secret', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong-secret-wrong-secret-xx' },
      { 'x-api-key': 'nope' },
    ];
    for (const headers of attempts) {
      const response = await call(t, 'POST', '/webhooks/livepeer/live-ai-auth', {
        headers,
        body: { stream_key: 'x' },
      });
      expect(response.status).toBe(401);
      expect(response.body.error).toBe('Unauthorized');
    }
  });

  it('stream auth: the ingest URL key maps to the stream; unknown or revoked keys are refused', async () => {
    const stream = await createStream();
    const ok = await call(t, 'POST', `/webhooks/livepeer/stream-auth?secret=${SECRET}`, {
      body: { url: `rtmp://gateway.example:1935/live/${stream.stream_key}` },
    });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ manifestID: stream.id, streamKey: stream.stream_key });
    const unknown = await call(t, 'POST', `/webhooks/livepeer/stream-auth?secret=${SECRET}`, {
      body: { url: `rtmp://gateway.example:1935/live/stk_${'x'.repeat(33)}` },
    });
    expect(unknown.status).toBe(403);
    const garbage = await call(t, 'POST', `/webhooks/livepeer/stream-auth?secret=${SECRET}`, {
      body: { url: 'not a url' },
    });
    expect(garbage.status).toBe(403);
    await call(t, 'DELETE', `/v1/streams/${stream.id}`, { headers: bearer(secret) });
    const revoked = await call(t, 'POST', `/webhooks/livepeer/stream-auth?secret=${SECRET}`, {
      body: { url: `rtmp://gateway.example:1935/live/${stream.stream_key}` },
    });
    expect(revoked.status).toBe(403);
  });

  it('live AI auth: go-livepeer sends the key as x-api-key and Authorization', async () => {
    const stream = await createStream();
    const body = {
      stream: 'my-stream',
      stream_key: stream.stream_key,
      type: 'live-video-to-video',
      query_params: '',
      gateway_host: 'gw.example',
      whep_url: 'https://gw.example/whep',
      status_url: '',
      update_url: '',
    };
    const ok = await call(t, 'POST', '/webhooks/livepeer/live-ai-auth', {
      headers: { 'x-api-key': SECRET, authorization: SECRET },
      body,
    });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ stream_id: stream.id });
    const bad = await call(t, 'POST', '/webhooks/livepeer/live-ai-auth', {
      headers: { 'x-api-key': SECRET, authorization: SECRET },
      body: { ...body, stream_key: 'stk_unknown' },
    });
    expect(bad.status).toBe(403);
    const wrongType = await call(t, 'POST', '/webhooks/livepeer/live-ai-auth', {
      headers: { 'x-api-key': SECRET },
      body: { stream_key: 42 },
    });
    expect(wrongType.status).toBe(400);
  });

  it('remote-signer auth: answers HTTP 200 with status 200/401/402/403 from the caller credential', async () => {
    const hook = (headers: Record<string, string[]>) =>
      call(t, 'POST', '/webhooks/livepeer/remote-signer-auth', {
        headers: bearer(SECRET),
        body: { headers, state: { StateID: 'abc' } },
      });
    const signerKey = await issueKey(t, accountId, { scopes: ['signer'] });
    const before = Math.floor(Date.now() / 1000);
    const ok = await hook({ Authorization: [`Bearer ${signerKey.secret}`] });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ status: 200, auth_id: signerKey.key.id });
    expect(ok.body.expiry).toBeGreaterThan(before);

    const invalid = await hook({ Authorization: ['Bearer th_sk_wrong'] });
    expect(invalid.status).toBe(200);
    expect(invalid.body).toEqual({ status: 401, reason: 'Invalid API key' });
    const missing = await hook({});
    expect(missing.body.status).toBe(401);

    const usageOnly = await issueKey(t, accountId, { scopes: ['usage:read'] });
    const forbidden = await hook({ authorization: [`Bearer ${usageOnly.secret}`] });
    expect(forbidden.body).toMatchObject({ status: 403 });

    const poor = await newAccount(t);
    const poorKey = await issueKey(t, poor, { scopes: ['signer'] });
    refused.add(poor);
    const unpaid = await hook({ Authorization: [`Bearer ${poorKey.secret}`] });
    expect(unpaid.body).toEqual({ status: 402, reason: 'No credit left' });
  });

  it('remote-signer auth: answers the signer price ceiling as maxPrice in the job type unit', async () => {
    const signerKey = await issueKey(t, accountId, { scopes: ['signer'] });
    const hook = (state: unknown) =>
      call(t, 'POST', '/webhooks/livepeer/remote-signer-auth', {
        headers: bearer(SECRET),
        body: { headers: { Authorization: [`Bearer ${signerKey.secret}`] }, state },
      });
    // 1200/7 = 171.428571428571428571428…, rounded down to 18 decimals (go-livepeer reads a
    // decimal); the unit is the one go-livepeer requires for the state's job type.
    const price = '171.428571428571428571';
    for (const [type, unit] of [
      ['lv2v', '720p-pixel-seconds'],
      ['live', 'seconds'],
      ['fixed', 'fixed'],
    ] as const) {
      const response = await hook({ StateID: 'abc', Type: type });
      expect(response.status).toBe(200);
      expect(response.body).toMatchObject({
        status: 200,
        auth_id: signerKey.key.id,
        maxPrice: { price, currency: 'wei', unit },
      });
    }
    // Per-pixel payments (no type) and unknown types: go-livepeer would refuse any maxPrice.
    for (const state of [{ StateID: 'abc', Type: '' }, { Type: 'usage' }, null, 'x', undefined]) {
      const response = await hook(state);
      expect(response.body.status).toBe(200);
      expect(response.body).not.toHaveProperty('maxPrice');
    }
    // A refusal carries no price.
    const refusedHook = await call(t, 'POST', '/webhooks/livepeer/remote-signer-auth', {
      headers: bearer(SECRET),
      body: { headers: {}, state: { Type: 'lv2v' } },
    });
    expect(refusedHook.body).toEqual({ status: 401, reason: 'Invalid API key' });
  });

  it('maxPrice: none without a ceiling; exact decimals; never rounded to zero', () => {
    expect(webhookMaxPrice(null, { Type: 'lv2v' })).toBeNull();
    expect(
      webhookMaxPrice({ pricePerUnitWei: 0n, pixelsPerUnit: 1n }, { Type: 'lv2v' }),
    ).toBeNull();
    const priced = (n: bigint, d: bigint) =>
      webhookMaxPrice({ pricePerUnitWei: n, pixelsPerUnit: d }, { Type: 'live' })?.price;
    expect(priced(5n, 2n)).toBe('2.5');
    expect(priced(1200n, 1n)).toBe('1200');
    expect(priced(1n, 10n ** 18n)).toBe('0.000000000000000001');
    expect(priced(1n, 10n ** 19n)).toBe('0.000000000000000001');
    expect(priced(10n ** 30n, 3n)).toBe('333333333333333333333333333333.333333333333333333');
  });

  it('answer 503 while LIVEPEER_WEBHOOK_SECRET is unset', async () => {
    const off = await startTestApp();
    try {
      const response = await call(off, 'POST', '/webhooks/livepeer/live-ai-auth', {
        headers: { 'x-api-key': SECRET },
        body: { stream_key: 'x' },
      });
      expect(response.status).toBe(503);
    } finally {
      await off.close();
    }
  });
});
