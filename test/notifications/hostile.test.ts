// Hostile input to /v1/webhooks: URLs that would make the server reach its own network, ids and
// cursors that are not ours, fields that are not in the schema — each refused with a clear 400,
// 404 or 409 in the documented shape, and nothing written.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkEndpointUrl, isNotPublic } from '../../src/notifications/urls.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { adminKey, bearer, call, issueKey } from '../support/credentials.ts';
import { newAccount } from '../support/fixtures.ts';
import { createResponseValidator } from '../support/openapi.ts';

let t: TestApp;
let own: Record<string, string>;
let other: Record<string, string>;
let operator: Record<string, string>;
let ownAccount: string;
let otherAccount: string;
const validate = createResponseValidator();

beforeAll(async () => {
  t = await startTestApp();
  ownAccount = await newAccount(t);
  otherAccount = await newAccount(t);
  own = bearer((await issueKey(t, ownAccount)).secret);
  other = bearer((await issueKey(t, otherAccount)).secret);
  operator = bearer((await adminKey(t)).secret);
});
afterAll(async () => t?.close());

async function count() {
  const row = await t.app.database.db
    .selectFrom('webhook_endpoints')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

describe('webhook endpoint URLs', () => {
  it.each([
    ['http://hooks.example.com/x', /https/],
    ['ftp://hooks.example.com/x', /https/],
    ['javascript:alert(1)', /https/],
    ['https://127.0.0.1/x', /non-public/],
    ['https://localhost:8080/x', /non-public/],
    ['http://localhost/x', /non-public/],
    ['https://10.1.2.3/x', /non-public/],
    ['https://0x7f.1/x', /non-public/],
    ['https://2130706433/x', /non-public/],
    ['https://169.254.169.254/latest/meta-data', /non-public/],
    ['https://[::1]/x', /non-public/],
    ['https://[::ffff:10.0.0.1]/x', /non-public/],
    ['https://[fd00::1]/x', /non-public/],
    ['https://user:pass@hooks.example.com/x', /user name or password/],
    ['https://hooks.example.com/x#frag', /fragment/],
    ['not a url', /not a URL/],
  ])('refuses %s', async (url, why) => {
    const before = await count();
    const response = await call(t, 'POST', '/v1/webhooks/endpoints', {
      headers: own,
      body: { url },
    });
    expect(response.status).toBe(400);
    expect(response.body.error).toBe('InvalidRequest');
    expect(response.body.message).toMatch(why);
    expect(validate('POST', '/v1/webhooks/endpoints', 400, response.body)).toBeNull();
    expect(await count()).toBe(before);
  });

  it('knows which addresses are not public', () => {
    for (const a of [
      '10.0.0.1',
      '192.168.1.1',
      '172.31.0.1',
      '100.64.0.1',
      '::1',
      'fe80::1',
      '::ffff:7f00:1',
    ])
      expect(isNotPublic(a), a).toBe(true);
    for (const a of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '172.32.0.1'])
      expect(isNotPublic(a), a).toBe(false);
    // Operators may allow http and private addresses (an internal receiver).
    const open = { allowHttp: true, allowPrivateAddresses: true };
    expect(checkEndpointUrl('http://10.0.0.5:9000/hook', open)).toBe('http://10.0.0.5:9000/hook');
  });
});

describe('webhook endpoint requests', () => {
  it('creates one for the caller and shows it in the documented shape', async () => {
    const created = await call(t, 'POST', '/v1/webhooks/endpoints', {
      headers: own,
      body: { url: 'https://hooks.example.com/ok', event_types: ['balance.low', 'balance.low'] },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('cache-control')).toBe('no-store');
    expect(validate('POST', '/v1/webhooks/endpoints', 201, created.body)).toBeNull();
    expect(created.body).toMatchObject({
      account_id: ownAccount,
      event_types: ['balance.low'],
      enabled: true,
    });
    const list = await call(t, 'GET', '/v1/webhooks/endpoints', { headers: own });
    expect(validate('GET', '/v1/webhooks/endpoints', 200, list.body)).toBeNull();
    expect(JSON.stringify(list.body)).not.toContain('whsec_');
    const deliveries = await call(
      t,
      'GET',
      `/v1/webhooks/endpoints/${created.body.id}/deliveries?limit=1`,
      { headers: own },
    );
    expect(
      validate('GET', '/v1/webhooks/endpoints/{id}/deliveries', 200, deliveries.body),
    ).toBeNull();
  });

  it.each([
    [{ url: 'https://h.example.com', extra: 1 }, /extra/],
    [{ url: 'https://h.example.com', event_types: ['nope'] }, /event_types/],
    [{ url: 'https://h.example.com', event_types: ['webhook.test'] }, /only on request/],
    [{ url: 'https://h.example.com', event_types: 'balance.low' }, /event_types/],
    [{ url: `https://h.example.com/${'a'.repeat(2100)}` }, /url/],
    [{ url: 'https://h.example.com', description: 'x'.repeat(201) }, /description/],
    [{ url: 'https://h.example.com', all_accounts: true }, /all_accounts/],
    [{ url: 'https://h.example.com', account_id: 'acct_../../x' }, /account_id/],
    [{}, /url/],
  ])('refuses hostile body #%#', async (body, why) => {
    const before = await count();
    const response = await call(t, 'POST', '/v1/webhooks/endpoints', { headers: own, body });
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(why);
    expect(await count()).toBe(before);
  });

  it("answers another account's endpoints and deliveries as unknown ones", async () => {
    const theirs = await call(t, 'POST', '/v1/webhooks/endpoints', {
      headers: other,
      body: { url: 'https://hooks.example.com/theirs' },
    });
    const id = theirs.body.id as string;
    const test = await call(t, 'POST', `/v1/webhooks/endpoints/${id}/test`, { headers: other });
    for (const [method, path, body] of [
      ['GET', `/v1/webhooks/endpoints/${id}`],
      ['PATCH', `/v1/webhooks/endpoints/${id}`, { enabled: false }],
      ['DELETE', `/v1/webhooks/endpoints/${id}`],
      ['POST', `/v1/webhooks/endpoints/${id}/rotate-secret`],
      ['POST', `/v1/webhooks/endpoints/${id}/test`],
      ['GET', `/v1/webhooks/endpoints/${id}/deliveries`],
      ['POST', `/v1/webhooks/endpoints/${id}/deliveries/${test.body.id}/resend`],
    ] as const) {
      const response = await call(t, method, path, { headers: own, body });
      expect(response.status, `${method} ${path}`).toBe(404);
    }
    // Asking for another account's list is refused outright.
    const list = await call(t, 'GET', `/v1/webhooks/endpoints?account_id=${otherAccount}`, {
      headers: own,
    });
    expect(list.status).toBe(403);
    // And a delivery id of theirs under an endpoint of ours is not found either.
    const mine = await call(t, 'POST', '/v1/webhooks/endpoints', {
      headers: own,
      body: { url: 'https://hooks.example.com/mine' },
    });
    const cross = await call(
      t,
      'POST',
      `/v1/webhooks/endpoints/${mine.body.id}/deliveries/${test.body.id}/resend`,
      { headers: own },
    );
    expect(cross.status).toBe(404);
    const shown = await call(t, 'GET', `/v1/webhooks/endpoints/${id}`, { headers: other });
    expect(shown.body.enabled).toBe(true);
  });

  it('keeps deployment endpoints to operators', async () => {
    const deployment = await call(t, 'POST', '/v1/webhooks/endpoints', {
      headers: operator,
      body: { url: 'https://hooks.example.com/ops', all_accounts: true },
    });
    expect(deployment.status).toBe(201);
    expect(deployment.body.account_id).toBeNull();
    const seen = await call(t, 'GET', `/v1/webhooks/endpoints/${deployment.body.id}`, {
      headers: own,
    });
    expect(seen.status).toBe(404);
    const list = await call(t, 'GET', '/v1/webhooks/endpoints', { headers: own });
    expect(list.body.endpoints.map((e: { id: string }) => e.id)).not.toContain(deployment.body.id);
  });

  it('refuses bad ids, cursors and limits with 400', async () => {
    const mine = await call(t, 'POST', '/v1/webhooks/endpoints', {
      headers: own,
      body: { url: 'https://hooks.example.com/c' },
    });
    const base = `/v1/webhooks/endpoints/${mine.body.id}/deliveries`;
    const foreignCursor = Buffer.from(`whd|whep_${'A'.repeat(22)}|5`).toString('base64url');
    const hugeCursor = Buffer.from(`whd|${mine.body.id}|99999999999999999999`).toString(
      'base64url',
    );
    for (const path of [
      '/v1/webhooks/endpoints/whep_short',
      '/v1/webhooks/endpoints/%00',
      `${base}?limit=0`,
      `${base}?limit=201`,
      `${base}?limit=1e2`,
      `${base}?cursor=${foreignCursor}`,
      `${base}?cursor=${hugeCursor}`,
      `${base}?cursor=!!`,
      `${base}?other=1`,
    ]) {
      const response = await call(t, 'GET', path, { headers: own });
      expect(response.status, path).toBe(400);
    }
    const empty = await call(t, 'PATCH', `/v1/webhooks/endpoints/${mine.body.id}`, {
      headers: own,
      body: {},
    });
    expect(empty.status).toBe(400);
  });

  it('caps endpoints per account (409), and counts only what exists', async () => {
    const account = await newAccount(t);
    const headers = bearer((await issueKey(t, account)).secret);
    const made = await Promise.all(
      Array.from({ length: 22 }, (_, i) =>
        call(t, 'POST', '/v1/webhooks/endpoints', {
          headers,
          body: { url: `https://hooks.example.com/${i}` },
        }),
      ),
    );
    expect(made.filter((r) => r.status === 201)).toHaveLength(20);
    expect(made.filter((r) => r.status === 409)).toHaveLength(2);
    const list = await call(t, 'GET', '/v1/webhooks/endpoints', { headers });
    expect(list.body.endpoints).toHaveLength(20);
  });
});
