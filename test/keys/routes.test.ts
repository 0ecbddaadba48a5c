// /v1/keys over real HTTP: who may manage which keys, the shapes returned (checked against
// openapi.yaml), and hostile input.
import { sql } from 'kysely';
import { findAuditBySubject } from '../../src/platform/audit.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { INVALID, bearer, call, issueKey, newAccount } from './support.ts';

const validate = createResponseValidator();
let t: TestApp;
let accountA: string;
let accountB: string;
let admin: string;
let keyA: string;

beforeAll(async () => {
  t = await startTestApp({ env: { HTTP_BODY_LIMIT_BYTES: '4096' } });
  const ops = await newAccount(t, 'ops@example.com');
  accountA = await newAccount(t, 'a@example.com');
  accountB = await newAccount(t, 'b@example.com');
  admin = (await issueKey(t, ops, { scopes: ['admin'] })).secret;
  keyA = (await issueKey(t, accountA, { scopes: ['gateway', 'usage:read'] })).secret;
});
afterAll(async () => {
  await t.close();
});

function checked(
  method: string,
  template: string,
  response: { status: number; body: unknown },
): void {
  expect(validate(method, template, response.status, response.body)).toBeNull();
}

describe('POST /v1/keys', () => {
  it('creates a backend key for the caller, shows the key once and never its hash', async () => {
    const created = await call(t, 'POST', '/v1/keys', {
      headers: bearer(keyA),
      body: { name: 'ci' },
    });
    expect(created.status).toBe(201);
    checked('POST', '/v1/keys', created);
    expect(created.headers.get('cache-control')).toBe('no-store');
    expect(created.body.secret).toMatch(/^th_sk_[0-9A-Za-z]{39}$/);
    expect(created.body.key).toMatchObject({
      account_id: accountA,
      kind: 'backend',
      name: 'ci',
      scopes: ['gateway'],
      status: 'active',
      rotation_due: false,
      display_prefix: created.body.secret.slice(0, 12),
      allowed_origins: null,
      last_used_at: null,
    });
    const shown = await call(t, 'GET', `/v1/keys/${created.body.key.id}`, {
      headers: bearer(keyA),
    });
    expect(shown.status).toBe(200);
    checked('GET', '/v1/keys/{id}', shown);
    const listed = await call(t, 'GET', '/v1/keys', { headers: bearer(keyA) });
    checked('GET', '/v1/keys', listed);
    for (const text of [JSON.stringify(shown.body), JSON.stringify(listed.body)]) {
      expect(text).not.toContain(created.body.secret);
      expect(text).not.toMatch(/[0-9a-f]{64}/); // no HMAC digest
    }
    // The new key works.
    const works = await call(t, 'GET', '/v1/auth/verify', { headers: bearer(created.body.secret) });
    expect(works.status).toBe(200);
  });

  it('creates a browser key limited to origins and resources, with the gateway scope only', async () => {
    const created = await call(t, 'POST', '/v1/keys', {
      headers: bearer(keyA),
      body: {
        name: 'web',
        kind: 'browser',
        allowed_origins: ['HTTPS://App.Example.com'],
        allowed_resources: ['text-to-image'],
      },
    });
    expect(created.status).toBe(201);
    expect(created.body.secret).toMatch(/^th_ck_/);
    expect(created.body.key).toMatchObject({
      kind: 'browser',
      scopes: ['gateway'],
      allowed_origins: ['https://app.example.com'],
      allowed_resources: ['text-to-image'],
    });
  });

  it('refuses browser keys without origins or resources, or with more than the gateway scope', async () => {
    const cases = [
      { name: 'w', kind: 'browser', allowed_resources: ['x'] },
      { name: 'w', kind: 'browser', allowed_origins: ['https://a.example'] },
      {
        name: 'w',
        kind: 'browser',
        allowed_origins: ['https://a.example'],
        allowed_resources: ['x'],
        scopes: ['gateway', 'usage:read'],
      },
      { name: 'b', kind: 'backend', allowed_origins: ['https://a.example'] },
      {
        name: 'w',
        kind: 'browser',
        allowed_origins: ['https://a.example/path'],
        allowed_resources: ['x'],
      },
    ];
    for (const body of cases) {
      const response = await call(t, 'POST', '/v1/keys', { headers: bearer(keyA), body });
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error).toBe('InvalidRequest');
      checked('POST', '/v1/keys', response);
    }
    const listed = await call(t, 'GET', '/v1/keys', { headers: bearer(keyA) });
    expect(listed.body.keys.filter((k: { name: string }) => k.name === 'w')).toEqual([]);
  });

  it('never grants more than the caller holds, nor keys for other accounts', async () => {
    const escalate = await call(t, 'POST', '/v1/keys', {
      headers: bearer(keyA),
      body: { name: 'x', scopes: ['admin'] },
    });
    expect(escalate.status).toBe(403);
    expect(escalate.body.message).toContain('admin');
    checked('POST', '/v1/keys', escalate);
    const other = await call(t, 'POST', '/v1/keys', {
      headers: bearer(keyA),
      body: { name: 'x', account_id: accountB },
    });
    expect(other.status).toBe(403);
  });

  it('lets an admin key manage any account, and refuses unknown accounts', async () => {
    const created = await call(t, 'POST', '/v1/keys', {
      headers: bearer(admin),
      body: { name: 'for b', account_id: accountB, scopes: ['billing:read'] },
    });
    expect(created.status).toBe(201);
    expect(created.body.key.account_id).toBe(accountB);
    const listed = await call(t, 'GET', `/v1/keys?account_id=${accountB}`, {
      headers: bearer(admin),
    });
    expect(listed.body.keys.map((k: { id: string }) => k.id)).toContain(created.body.key.id);
    const missing = await call(t, 'POST', '/v1/keys', {
      headers: bearer(admin),
      body: { name: 'x', account_id: 'acct_0000000000000000000000' },
    });
    expect(missing.status).toBe(404);
  });

  it('refuses the camelCase names of before issue #17 instead of ignoring them', async () => {
    // A body naming `accountId` would otherwise create the key in the caller's own account.
    const old = await call(t, 'POST', '/v1/keys', {
      headers: bearer(admin),
      body: { name: 'x', accountId: accountB, allowedResources: ['llm'] },
    });
    expect(old.status).toBe(400);
    checked('POST', '/v1/keys', old);
    expect(old.body.message).toMatch(/accountId/);
    expect(old.body.message).toMatch(/allowedResources/);
    const rotate = await call(
      t,
      'POST',
      `/v1/keys/${(await issueKey(t, accountB)).key.id}/rotate`,
      {
        headers: bearer(admin),
        body: { graceSeconds: 0 },
      },
    );
    expect(rotate.status).toBe(400);
    const list = await call(t, 'GET', `/v1/keys?accountId=${accountB}`, { headers: bearer(admin) });
    expect(list.status).toBe(400);
    checked('GET', '/v1/keys', list);
  });

  it('answers hostile input with documented 4xx errors and writes nothing', async () => {
    const before = await call(t, 'GET', '/v1/keys', { headers: bearer(keyA) });
    const bad = [
      { raw: '{"name": ', status: 400 },
      { raw: '"text"', status: 400 },
      { raw: JSON.stringify({ name: 5 }), status: 400 },
      { raw: JSON.stringify({ name: '' }), status: 400 },
      { raw: JSON.stringify({ name: 'x', admin: true }), status: 400 },
      { raw: JSON.stringify({ name: 'x', scopes: ['root'] }), status: 400 },
      { raw: JSON.stringify({ name: 'x', expires_at: 'tomorrow' }), status: 400 },
      { raw: JSON.stringify({ name: 'x', expires_at: '2001-01-01T00:00:00Z' }), status: 400 },
      { raw: JSON.stringify({ name: 'x', kind: 'superuser' }), status: 400 },
      { raw: JSON.stringify({ name: 'x'.repeat(5000) }), status: 413 },
    ];
    for (const { raw, status } of bad) {
      const response = await call(t, 'POST', '/v1/keys', { headers: bearer(keyA), raw });
      expect(response.status, raw.slice(0, 60)).toBe(status);
      expect(response.body).toMatchObject({
        error: expect.any(String),
        message: expect.any(String),
      });
    }
    const form = await call(t, 'POST', '/v1/keys', {
      headers: { ...bearer(keyA), 'content-type': 'text/plain' },
      raw: 'name=x',
    });
    expect(form.status).toBe(415);
    const after = await call(t, 'GET', '/v1/keys', { headers: bearer(keyA) });
    expect(after.body.keys.length).toBe(before.body.keys.length);
  });

  it('answers 401 with the exact body without credentials', async () => {
    for (const headers of [
      {},
      { authorization: 'Bearer nope' },
      { authorization: 'Basic YTpi' },
    ] as Array<Record<string, string>>) {
      const response = await call(t, 'POST', '/v1/keys', { headers, body: { name: 'x' } });
      expect(response.status).toBe(401);
      expect(response.body).toEqual(INVALID);
      expect(response.headers.get('www-authenticate')).toMatch(/^Bearer /);
      checked('POST', '/v1/keys', response);
    }
  });
});

describe('every /v1/keys route', () => {
  it('answers 401 without a credential, and 400/413 for bad bodies, changing nothing', async () => {
    const { key } = await issueKey(t, accountA, { name: 'untouched' });
    const routes: Array<[string, string]> = [
      ['GET', '/v1/keys'],
      ['POST', '/v1/keys'],
      ['GET', `/v1/keys/${key.id}`],
      ['PATCH', `/v1/keys/${key.id}`],
      ['POST', `/v1/keys/${key.id}/revoke`],
      ['POST', `/v1/keys/${key.id}/rotate`],
    ];
    // The last character changed (to one it is not, or the "tampered" key is the key itself).
    const tampered = keyA.slice(0, -1) + (keyA.endsWith('x') ? 'y' : 'x');
    for (const [method, path] of routes) {
      const response = await call(t, method, path, {
        headers: { authorization: `Bearer ${tampered}` },
      });
      expect(response.status, `${method} ${path}`).toBe(401);
      expect(response.body).toEqual(INVALID);
    }
    for (const path of [`/v1/keys/${key.id}`, `/v1/keys/${key.id}/rotate`]) {
      const method = path.endsWith('rotate') ? 'POST' : 'PATCH';
      for (const [raw, status] of [
        ['{"name":', 400],
        ['[1,2]', 400],
        [JSON.stringify({ name: 'y'.repeat(8000) }), 413],
        [JSON.stringify({ grace_seconds: 1e30, name: 5 }), 400],
      ] as const) {
        const response = await call(t, method, path, { headers: bearer(keyA), raw });
        expect(response.status, `${method} ${path} ${raw.slice(0, 20)}`).toBe(status);
      }
    }
    const shown = await call(t, 'GET', `/v1/keys/${key.id}`, { headers: bearer(keyA) });
    expect(shown.body).toMatchObject({ name: 'untouched', status: 'active', replaced_by: null });
  });
});

describe('GET /v1/keys/{id}, PATCH, revoke', () => {
  it('hides other accounts’ keys as 404 and rejects malformed ids with 400', async () => {
    const other = await issueKey(t, accountB);
    for (const [method, path] of [
      ['GET', `/v1/keys/${other.key.id}`],
      ['PATCH', `/v1/keys/${other.key.id}`],
      ['POST', `/v1/keys/${other.key.id}/revoke`],
      ['POST', `/v1/keys/${other.key.id}/rotate`],
      ['GET', '/v1/keys/key_0000000000000000000000'],
    ] as const) {
      const response = await call(t, method, path, {
        headers: bearer(keyA),
        ...(method === 'PATCH' ? { body: { name: 'mine now' } } : {}),
      });
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(response.body.error).toBe('NotFound');
    }
    const malformed = await call(t, 'GET', '/v1/keys/not-a-key', { headers: bearer(keyA) });
    expect(malformed.status).toBe(400);
    const list = await call(t, 'GET', `/v1/keys?account_id=${accountB}`, { headers: bearer(keyA) });
    expect(list.status).toBe(403);
    const badQuery = await call(t, 'GET', '/v1/keys?account_id=zzz', { headers: bearer(admin) });
    expect(badQuery.status).toBe(400);
    // And the other account's key is untouched.
    const still = await call(t, 'GET', '/v1/auth/verify', { headers: bearer(other.secret) });
    expect(still.status).toBe(200);
  });

  it('updates name, scopes and expiry, and validates the result', async () => {
    const { key } = await issueKey(t, accountA);
    const renamed = await call(t, 'PATCH', `/v1/keys/${key.id}`, {
      headers: bearer(keyA),
      body: { name: 'renamed', scopes: ['usage:read'] },
    });
    expect(renamed.status).toBe(200);
    checked('PATCH', '/v1/keys/{id}', renamed);
    expect(renamed.body).toMatchObject({ name: 'renamed', scopes: ['usage:read'] });
    for (const body of [
      {},
      { kind: 'browser' },
      { scopes: [] },
      { allowed_origins: ['https://a.example'] },
      { expires_at: '2001-01-01T00:00:00Z' },
    ]) {
      const response = await call(t, 'PATCH', `/v1/keys/${key.id}`, {
        headers: bearer(keyA),
        body,
      });
      expect(response.status, JSON.stringify(body)).toBe(400);
    }
    const escalate = await call(t, 'PATCH', `/v1/keys/${key.id}`, {
      headers: bearer(keyA),
      body: { scopes: ['signer'] },
    });
    expect(escalate.status).toBe(403);
  });

  it('revokes a key at once, idempotently, and refuses to change it afterwards', async () => {
    const { key, secret } = await issueKey(t, accountA);
    expect((await call(t, 'GET', '/v1/auth/verify', { headers: bearer(secret) })).status).toBe(200);
    const revoked = await call(t, 'POST', `/v1/keys/${key.id}/revoke`, { headers: bearer(keyA) });
    expect(revoked.status).toBe(200);
    checked('POST', '/v1/keys/{id}/revoke', revoked);
    expect(revoked.body.status).toBe('revoked');
    const refused = await call(t, 'GET', '/v1/auth/verify', { headers: bearer(secret) });
    expect(refused.status).toBe(401);
    expect(refused.body).toEqual(INVALID);
    const again = await call(t, 'POST', `/v1/keys/${key.id}/revoke`, { headers: bearer(keyA) });
    expect(again.status).toBe(200);
    expect(again.body.revoked_at).toBe(revoked.body.revoked_at);
    const patch = await call(t, 'PATCH', `/v1/keys/${key.id}`, {
      headers: bearer(keyA),
      body: { name: 'x' },
    });
    expect(patch.status).toBe(409);
    const rotate = await call(t, 'POST', `/v1/keys/${key.id}/rotate`, { headers: bearer(keyA) });
    expect(rotate.status).toBe(409);
    // Audited once, by the key that did it.
    const audit = await findAuditBySubject(t.app.database.db, key.id);
    expect(audit.map((a) => a.action)).toEqual(['key.create', 'key.revoke']);
    expect(audit[1]?.actor).toMatch(/^key_/);
  });

  it('refuses browser keys at the management API', async () => {
    const browser = await issueKey(t, accountA, {
      kind: 'browser',
      scopes: ['gateway'],
      allowedOrigins: ['https://app.example.com'],
      allowedResources: ['x'],
    });
    const response = await call(t, 'GET', '/v1/keys', {
      headers: bearer(browser.secret, { origin: 'https://app.example.com' }),
    });
    expect(response.status).toBe(403);
    expect(response.body.rule).toBe('browser-key-scope');
  });
});

describe('POST /v1/keys/{id}/rotate', () => {
  it('issues a replacement with the same properties and keeps the old key for the grace window', async () => {
    const { key, secret } = await issueKey(t, accountA, { scopes: ['gateway'], name: 'prod' });
    const rotated = await call(t, 'POST', `/v1/keys/${key.id}/rotate`, {
      headers: bearer(keyA),
      body: { grace_seconds: 2 },
    });
    expect(rotated.status).toBe(201);
    checked('POST', '/v1/keys/{id}/rotate', rotated);
    expect(rotated.body.key).toMatchObject({ name: 'prod', scopes: ['gateway'], status: 'active' });
    expect(rotated.body.previous.replaced_by).toBe(rotated.body.key.id);
    const graceEnd = Date.parse(rotated.body.previous.expires_at);
    // Both work during the grace window: no downtime.
    expect((await call(t, 'GET', '/v1/auth/verify', { headers: bearer(secret) })).status).toBe(200);
    const fresh = rotated.body.secret;
    expect((await call(t, 'GET', '/v1/auth/verify', { headers: bearer(fresh) })).status).toBe(200);
    const twice = await call(t, 'POST', `/v1/keys/${key.id}/rotate`, { headers: bearer(keyA) });
    expect(twice.status).toBe(409);
    // After the grace end the old key is refused (it was cached: expiry is checked per use).
    t.clock.set(new Date(graceEnd + 1));
    const old = await call(t, 'GET', '/v1/auth/verify', { headers: bearer(secret) });
    expect(old.status).toBe(401);
    expect(old.body).toEqual(INVALID);
    expect((await call(t, 'GET', '/v1/auth/verify', { headers: bearer(fresh) })).status).toBe(200);
    const shown = await call(t, 'GET', `/v1/keys/${key.id}`, { headers: bearer(keyA) });
    expect(shown.body.status).toBe('expired');
  });

  it('with no grace refuses the old key at once', async () => {
    const { key, secret } = await issueKey(t, accountA);
    expect((await call(t, 'GET', '/v1/auth/verify', { headers: bearer(secret) })).status).toBe(200);
    const rotated = await call(t, 'POST', `/v1/keys/${key.id}/rotate`, {
      headers: bearer(keyA),
      body: { grace_seconds: 0 },
    });
    expect(rotated.status).toBe(201);
    expect((await call(t, 'GET', '/v1/auth/verify', { headers: bearer(secret) })).status).toBe(401);
    for (const body of [{ grace_seconds: -1 }, { grace_seconds: 1.5 }, { grace_seconds: 'soon' }]) {
      const response = await call(t, 'POST', `/v1/keys/${rotated.body.key.id}/rotate`, {
        headers: bearer(keyA),
        body,
      });
      expect(response.status).toBe(400);
    }
  });
});

describe('listing and rotation schedule', () => {
  it('flags keys older than 90 days and counts them in a metric', async () => {
    const account = await newAccount(t);
    const old = await issueKey(t, account);
    const recent = await issueKey(t, account);
    const longAgo = new Date(t.clock().getTime() - 91 * 86_400_000);
    await sql`update api_keys set created_at = ${longAgo} where id = ${old.key.id}`.execute(
      t.app.database.db,
    );
    const listed = await call(t, 'GET', `/v1/keys?account_id=${account}`, {
      headers: bearer(admin),
    });
    const flags = Object.fromEntries(
      listed.body.keys.map((k: { id: string; rotation_due: boolean }) => [k.id, k.rotation_due]),
    );
    expect(flags).toEqual({ [old.key.id]: true, [recent.key.id]: false });
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/^tollhouse_api_keys_rotation_due 1$/m);
  });

  it('records last use in batches, not per request', async () => {
    const { key, secret } = await issueKey(t, accountA);
    expect((await call(t, 'GET', '/v1/auth/verify', { headers: bearer(secret) })).status).toBe(200);
    const before = await call(t, 'GET', `/v1/keys/${key.id}`, { headers: bearer(keyA) });
    expect(before.body.last_used_at).toBeNull();
    await t.app.keys.verifier.flushLastUsed();
    const after = await call(t, 'GET', `/v1/keys/${key.id}`, { headers: bearer(keyA) });
    expect(after.body.last_used_at).not.toBeNull();
  });
});
