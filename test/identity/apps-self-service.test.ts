// /v1/apps as self-service over HTTP: a customer manages its own account's apps with its own
// credentials (an API key, an OIDC access token), never another account's, and never with more
// scopes than its credential holds. Admin behaviour is pinned in apps-routes.test.ts.
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_USER_TOKEN_TYPE } from '../../src/identity/index.ts';
import { issueKey } from '../support/credentials.ts';
import { json } from '../support/http.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { discover, startIdentityApp } from './support.ts';
import type { IdentityTestApp } from './support.ts';
import { accountWithPassword } from '../support/fixtures.ts';

let t: IdentityTestApp;
let aliceId: string;
let bobId: string;
let alice: string; // backend API key of alice's account
let aliceToken: string; // OIDC access token (client credentials) of alice's account
let bob: string;
let admin: string;
let bobApp: string;
let aliceConfig: oidc.Configuration;
const validate = createResponseValidator();

beforeAll(async () => {
  t = await startIdentityApp();
  aliceId = (await accountWithPassword(t, 'alice@example.com')).id;
  bobId = (await accountWithPassword(t, 'bob@example.com')).id;
  const adminId = (await accountWithPassword(t, 'root@example.com', { admin: true })).id;
  alice = (await issueKey(t, aliceId, { scopes: ['gateway', 'usage:read'] })).secret;
  bob = (await issueKey(t, bobId, { scopes: ['gateway'] })).secret;
  admin = (await issueKey(t, adminId, { scopes: ['admin'] })).secret;
  const { app, clientSecret } = await t.app.identity.apps.create(
    { name: 'alice backend', kind: 'machine', ownerAccountId: aliceId, scopes: ['gateway'] },
    { id: 'test' },
  );
  const config = await discover(t, app.clientId, clientSecret);
  aliceConfig = config;
  aliceToken = (await oidc.clientCredentialsGrant(config, { scope: 'gateway' })).access_token;
  const created = await call('POST', '/v1/apps', bob, {
    name: 'Bob web',
    kind: 'web',
    redirect_uris: ['https://bob.example/cb'],
  });
  expect(created.status).toBe(201);
  bobApp = created.body.id;
});
afterAll(async () => t?.close());

async function call(method: string, path: string, token: string, body?: unknown, raw?: string) {
  const response = await fetch(`${t.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined || raw !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const payload = await json(response);
  const template = path.replace(/^\/v1\/apps\/[^/]+/, '/v1/apps/{id}');
  expect(validate(method, template, response.status, payload)).toBeNull();
  return { status: response.status, body: payload, headers: response.headers };
}

async function appRow(id: string) {
  return t.app.database.db.selectFrom('apps').selectAll().where('id', '=', id).executeTakeFirst();
}

describe('/v1/apps for a customer', () => {
  it('creates, lists, shows, updates, rotates and disables its own app', async () => {
    const created = await call('POST', '/v1/apps', alice, {
      name: 'Alice studio',
      kind: 'web',
      redirect_uris: ['https://alice.example/callback'],
      allowed_origins: ['https://alice.example'],
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('cache-control')).toBe('no-store');
    expect(created.body).toMatchObject({ owner_account_id: aliceId, scopes: ['gateway'] });
    expect(created.body.client_secret).toMatch(/^thcs_/);
    const id = created.body.id as string;

    // The OIDC access token of the same account sees the same apps, and only those.
    for (const token of [alice, aliceToken]) {
      const list = await call('GET', '/v1/apps', token);
      expect(list.status).toBe(200);
      const owners = new Set(
        list.body.apps.map((a: { owner_account_id: string }) => a.owner_account_id),
      );
      expect([...owners]).toEqual([aliceId]);
      expect(list.body.apps.map((a: { id: string }) => a.id)).toContain(id);
    }
    const shown = await call('GET', `/v1/apps/${id}`, aliceToken);
    expect(shown.status).toBe(200);
    expect(shown.body).not.toHaveProperty('client_secret');

    const updated = await call('PATCH', `/v1/apps/${id}`, alice, {
      name: 'Alice studio 2',
      scopes: ['gateway', 'usage:read'],
      redirect_uris: ['https://alice.example/cb2'],
    });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({
      name: 'Alice studio 2',
      scopes: ['gateway', 'usage:read'],
      redirect_uris: ['https://alice.example/cb2'],
    });

    const rotated = await call('POST', `/v1/apps/${id}/rotate-secret`, alice, {
      grace_seconds: 3600,
    });
    expect(rotated.status).toBe(200);
    expect(rotated.body.client_secret).toMatch(/^thcs_/);
    expect(rotated.body.client_secret).not.toBe(created.body.client_secret);
    expect(Date.parse(rotated.body.previous_secret_expires_at)).toBeGreaterThan(Date.now());

    const disabled = await call('PATCH', `/v1/apps/${id}`, aliceToken, { status: 'disabled' });
    expect(disabled.body.status).toBe('disabled');
    const audit = await t.app.database.db
      .selectFrom('audit_log')
      .select(['action', 'actor'])
      .where('subject', '=', id)
      .orderBy('id')
      .execute();
    expect(audit.map((a) => a.action)).toEqual([
      'app.create',
      'app.update',
      'app.rotate_secret',
      'app.disable',
    ]);
  });

  it("answers 404 for another account's app and changes nothing", async () => {
    const before = await appRow(bobApp);
    for (const token of [alice, aliceToken]) {
      const cases = [
        await call('GET', `/v1/apps/${bobApp}`, token),
        await call('PATCH', `/v1/apps/${bobApp}`, token, { name: 'pwned' }),
        await call('PATCH', `/v1/apps/${bobApp}`, token, { status: 'disabled' }),
        await call('POST', `/v1/apps/${bobApp}/rotate-secret`, token, { grace_seconds: 0 }),
      ];
      const unknown = await call('GET', '/v1/apps/app_0000000000000000000000', token);
      for (const result of cases) {
        expect(result.status).toBe(404);
        // The same answer as for an id that does not exist: existence is not confirmed.
        expect(result.body).toEqual({
          error: 'NotFound',
          message: `No app ${bobApp}`,
        });
      }
      expect(unknown.body.message).toBe('No app app_0000000000000000000000');
      const list = await call('GET', '/v1/apps', token);
      expect(list.body.apps.map((a: { id: string }) => a.id)).not.toContain(bobApp);
    }
    expect(await appRow(bobApp)).toEqual(before);
  });

  it('refuses to register an app for another account (403), whether or not it exists', async () => {
    const before = (await t.app.database.db.selectFrom('apps').select('id').execute()).length;
    for (const owner of [bobId, 'acct_0000000000000000000000']) {
      const result = await call('POST', '/v1/apps', alice, {
        name: 'for bob',
        kind: 'machine',
        owner_account_id: owner,
      });
      expect(result.status).toBe(403);
      expect(result.body.message).toContain('admin');
    }
    // Naming its own account is allowed.
    const own = await call('POST', '/v1/apps', alice, {
      name: 'mine',
      kind: 'machine',
      owner_account_id: aliceId,
    });
    expect(own.status).toBe(201);
    const after = (await t.app.database.db.selectFrom('apps').select('id').execute()).length;
    expect(after).toBe(before + 1);
  });

  it('refuses scopes the credential lacks (403), and the admin scope', async () => {
    const before = (await t.app.database.db.selectFrom('apps').select('id').execute()).length;
    for (const scopes of [['signer'], ['gateway', 'billing:read'], ['admin']]) {
      const result = await call('POST', '/v1/apps', alice, { name: 'x', kind: 'machine', scopes });
      expect(result.status, scopes.join()).toBe(403);
      expect(result.body.message).toContain('lacks');
    }
    // bob's key holds only `gateway`: the default app scope; usage:read is beyond it.
    const mine = await call('POST', '/v1/apps', bob, { name: 'b', kind: 'machine' });
    expect(mine.status).toBe(201);
    const widened = await call('PATCH', `/v1/apps/${mine.body.id}`, bob, {
      scopes: ['gateway', 'usage:read'],
    });
    expect(widened.status).toBe(403);
    expect((await appRow(mine.body.id))?.scopes).toEqual(['gateway']);
    const after = (await t.app.database.db.selectFrom('apps').select('id').execute()).length;
    expect(after).toBe(before + 1);
  });

  it('refuses browser keys and hostile input, writing nothing', async () => {
    const browser = await issueKey(t, aliceId, {
      kind: 'browser',
      scopes: ['gateway'],
      allowedOrigins: ['https://alice.example'],
      allowedResources: ['live'],
    });
    const before = await t.app.database.db.selectFrom('apps').selectAll().execute();
    const viaBrowser = await fetch(`${t.url}/v1/apps`, {
      headers: { authorization: `Bearer ${browser.secret}`, origin: 'https://alice.example' },
    });
    expect(viaBrowser.status).toBe(403);

    const cases: Array<[unknown, string | undefined, number]> = [
      [undefined, '{"name":', 400],
      [undefined, 'null', 400],
      [{ name: 'x', kind: 'machine', owner_account_id: 'acct_../../etc' }, undefined, 400],
      [{ name: 'x', kind: 'machine', owner_account_id: ['acct_x'] }, undefined, 400],
      [{ name: 'x', kind: 'machine', account_id: bobId }, undefined, 400],
      [{ name: ' ', kind: 'machine' }, undefined, 400],
      [{ name: 'x', kind: 'web', redirect_uris: ['javascript:alert(1)'] }, undefined, 400],
      [{ name: 'x', kind: 'web', redirect_uris: ['http://evil.example/cb'] }, undefined, 400],
      [
        { name: 'x', kind: 'public', redirect_uris: Array(21).fill('https://a.example/cb') },
        undefined,
        400,
      ],
      // A prototype key cannot smuggle an owner past the strict schema.
      [undefined, `{"name":"x","kind":"machine","__proto__":{"owner_account_id":"${bobId}"}}`, 400],
      [undefined, JSON.stringify({ name: 'x'.repeat(2_000_000), kind: 'web' }), 413],
    ];
    for (const [body, raw, status] of cases) {
      const result = await call('POST', '/v1/apps', alice, body, raw);
      expect(result.status, JSON.stringify(body ?? raw?.slice(0, 60))).toBe(status);
      expect(result.body).toMatchObject({ error: expect.any(String), message: expect.any(String) });
    }
    // Bad ids and bodies on the other routes.
    expect((await call('GET', '/v1/apps/app_%27%20or%201=1', alice)).status).toBe(400);
    expect(
      (await call('PATCH', `/v1/apps/${bobApp}`, alice, { owner_account_id: aliceId })).status,
    ).toBe(400);
    expect(
      (await call('POST', `/v1/apps/${bobApp}/rotate-secret`, alice, { grace_seconds: 1e12 }))
        .status,
    ).toBe(400);
    expect(await t.app.database.db.selectFrom('apps').selectAll().execute()).toEqual(before);
  });
});

describe('/v1/apps for a token acting for an app user', () => {
  it("is refused (403): it speaks for the app's end user, not for the account", async () => {
    const endUser = (
      await oidc.genericGrantRequest(
        aliceConfig,
        'urn:ietf:params:oauth:grant-type:token-exchange',
        { subject_token: 'customer-1', subject_token_type: APP_USER_TOKEN_TYPE },
      )
    ).access_token;
    const before = await t.app.database.db.selectFrom('apps').selectAll().execute();
    const list = await call('GET', '/v1/apps', endUser);
    expect(list.status).toBe(403);
    expect(list.body.message).toContain('end user');
    const create = await call('POST', '/v1/apps', endUser, { name: 'x', kind: 'machine' });
    expect(create.status).toBe(403);
    expect(await t.app.database.db.selectFrom('apps').selectAll().execute()).toEqual(before);
  });
});

describe('/v1/apps for an admin', () => {
  it("still lists every account's apps and manages another account's app", async () => {
    const list = await call('GET', '/v1/apps', admin);
    const owners = new Set(
      list.body.apps.map((a: { owner_account_id: string }) => a.owner_account_id),
    );
    expect(owners.has(aliceId) && owners.has(bobId)).toBe(true);
    const renamed = await call('PATCH', `/v1/apps/${bobApp}`, admin, { name: 'Bob web (ops)' });
    expect(renamed.status).toBe(200);
    const forBob = await call('POST', '/v1/apps', admin, {
      name: 'by ops',
      kind: 'machine',
      owner_account_id: bobId,
      scopes: ['gateway', 'usage:read'],
    });
    expect(forBob.status).toBe(201);
    expect(forBob.body.owner_account_id).toBe(bobId);
  });
});
