// /v1/accounts over HTTP (admin only, validated, documented), and what disabling an account
// does at once in this process: its API keys, access tokens, refresh tokens, apps and sign-in
// all stop working, and come back when it is enabled.
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, issueKey } from '../support/credentials.ts';
import { json } from '../support/http.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { Browser, browserLogin, discover, pkce, startIdentityApp } from './support.ts';
import type { IdentityTestApp } from './support.ts';
import { accountWithPassword } from '../support/fixtures.ts';

let t: IdentityTestApp;
let adminId: string;
let adminKey: string;
let userKey: string;
const validate = createResponseValidator();

beforeAll(async () => {
  t = await startIdentityApp();
  const admin = await accountWithPassword(t, 'root@ops.example', { admin: true, name: 'Root' });
  adminId = admin.id;
  adminKey = (await issueKey(t, admin.id, { scopes: ['admin'] })).secret;
  const user = await accountWithPassword(t, 'plain@users.example');
  userKey = (await issueKey(t, user.id, { scopes: ['gateway', 'usage:read'] })).secret;
});
afterAll(async () => t.close());

async function call(
  method: string,
  path: string,
  options: { body?: unknown; raw?: string; key?: string | null; contentType?: string } = {},
) {
  const headers: Record<string, string> = {};
  const key = options.key === undefined ? adminKey : options.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  const body =
    options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  if (body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  const response = await fetch(`${t.url}${path}`, { method, headers, body });
  const payload = await json(response);
  const template = path.split('?')[0]!.replace(/^\/v1\/accounts\/[^/]+$/, '/v1/accounts/{id}');
  expect(validate(method, template, response.status, payload)).toBeNull();
  return { status: response.status, body: payload };
}

async function verifyStatus(credential: string) {
  const response = await fetch(`${t.url}/v1/auth/verify`, { headers: bearer(credential) });
  await response.arrayBuffer();
  return response.status;
}

describe('/v1/accounts', () => {
  it('searches, pages, shows and edits accounts', async () => {
    for (const [email, name] of [
      ['ann@search.example', 'Ann Lee'],
      ['Bob@Search.example', null],
      ['cy_100%@search.example', 'Cy'],
      ['dee@elsewhere.example', 'Dee Search'],
    ] as const) {
      await accountWithPassword(t, email, name === null ? {} : { name });
    }
    // Email or name, case-insensitive, in email order.
    const found = await call('GET', '/v1/accounts?q=SEARCH&limit=2');
    expect(found.status).toBe(200);
    expect(found.body.accounts.map((a: { email: string }) => a.email)).toEqual([
      'ann@search.example',
      'Bob@Search.example',
    ]);
    expect(found.body.next_cursor).toEqual(expect.any(String));
    const rest = await call(
      'GET',
      `/v1/accounts?q=search&limit=2&cursor=${found.body.next_cursor}`,
    );
    expect(rest.body.accounts.map((a: { email: string }) => a.email)).toEqual([
      'cy_100%@search.example',
      'dee@elsewhere.example',
    ]);
    expect(rest.body.next_cursor).toBeNull();
    // LIKE wildcards in the query match themselves.
    const literal = await call('GET', `/v1/accounts?q=${encodeURIComponent('_100%')}`);
    expect(literal.body.accounts.map((a: { email: string }) => a.email)).toEqual([
      'cy_100%@search.example',
    ]);
    expect((await call('GET', '/v1/accounts?q=%25')).body.accounts).toHaveLength(1);

    const ann = found.body.accounts[0] as { id: string };
    const shown = await call('GET', `/v1/accounts/${ann.id}`);
    expect(shown.body).toMatchObject({
      id: ann.id,
      email: 'ann@search.example',
      name: 'Ann Lee',
      status: 'active',
      is_admin: false,
    });
    expect(JSON.stringify(shown.body)).not.toContain('password');

    const edited = await call('PATCH', `/v1/accounts/${ann.id}`, {
      body: { name: '  Ann Smith ', email: 'ann.smith@search.example' },
    });
    expect(edited.status).toBe(200);
    expect(edited.body).toMatchObject({ name: 'Ann Smith', email: 'ann.smith@search.example' });
    const cleared = await call('PATCH', `/v1/accounts/${ann.id}`, { body: { name: null } });
    expect(cleared.body.name).toBeNull();

    const disabled = await call('GET', '/v1/accounts?status=disabled');
    expect(disabled.body.accounts).toEqual([]);

    const audit = await t.app.database.db
      .selectFrom('audit_log')
      .select(['action', 'actor'])
      .where('subject', '=', ann.id)
      .execute();
    expect(audit.map((a) => a.action)).toEqual(['account.update', 'account.update']);
  });

  it('refuses hostile input with a documented error and changes nothing', async () => {
    const victim = await accountWithPassword(t, 'victim@hostile.example', { name: 'Victim' });
    await accountWithPassword(t, 'taken@hostile.example');
    const path = `/v1/accounts/${victim.id}`;
    const cases: Array<[string, string, Parameters<typeof call>[2], number, string]> = [
      ['GET', '/v1/accounts', { key: null }, 401, 'Unauthorized'],
      ['GET', '/v1/accounts', { key: userKey }, 403, 'Forbidden'],
      ['PATCH', path, { key: userKey, body: { status: 'disabled' } }, 403, 'Forbidden'],
      ['GET', '/v1/accounts?limit=0', {}, 400, 'InvalidRequest'],
      ['GET', '/v1/accounts?limit=201', {}, 400, 'InvalidRequest'],
      ['GET', '/v1/accounts?limit=ten', {}, 400, 'InvalidRequest'],
      ['GET', '/v1/accounts?status=gone', {}, 400, 'InvalidRequest'],
      ['GET', '/v1/accounts?q=a&q=b', {}, 400, 'InvalidRequest'],
      ['GET', `/v1/accounts?q=${'x'.repeat(321)}`, {}, 400, 'InvalidRequest'],
      ['GET', '/v1/accounts?cursor=not-a-cursor', {}, 400, 'InvalidRequest'],
      ['GET', '/v1/accounts?cursor=%27%3B%20drop%20table%20accounts', {}, 400, 'InvalidRequest'],
      ['GET', '/v1/accounts?sort=email', {}, 400, 'InvalidRequest'],
      ['GET', '/v1/accounts/acct_nobody0000000000000000', {}, 404, 'NotFound'],
      ['GET', '/v1/accounts/not-an-id', {}, 400, 'InvalidRequest'],
      ['GET', `/v1/accounts/acct_${'x'.repeat(65)}`, {}, 400, 'InvalidRequest'],
      ['PATCH', path, { body: {} }, 400, 'InvalidRequest'],
      ['PATCH', path, { body: { is_admin: true } }, 400, 'InvalidRequest'],
      ['PATCH', path, { body: { password: 'new password 123' } }, 400, 'InvalidRequest'],
      ['PATCH', path, { body: { status: 'deleted' } }, 400, 'InvalidRequest'],
      ['PATCH', path, { body: { email: 'not an email' } }, 400, 'InvalidRequest'],
      ['PATCH', path, { body: { email: `${'a'.repeat(320)}@x.example` } }, 400, 'InvalidRequest'],
      ['PATCH', path, { body: { name: '' } }, 400, 'InvalidRequest'],
      ['PATCH', path, { body: { name: 'x'.repeat(101) } }, 400, 'InvalidRequest'],
      ['PATCH', path, { body: { name: 'bell\u0007' } }, 400, 'InvalidRequest'],
      ['PATCH', path, { body: { name: 42 } }, 400, 'InvalidRequest'],
      ['PATCH', path, { raw: '{"name":' }, 400, 'BadRequest'],
      ['PATCH', path, { raw: '[]' }, 400, 'InvalidRequest'],
      ['PATCH', path, { raw: 'name=x', contentType: 'text/plain' }, 415, 'UnsupportedMediaType'],
      ['PATCH', path, { body: { name: 'x'.repeat(2_000_000) } }, 413, 'PayloadTooLarge'],
      // Another account's email, in another case: the unique index is case-insensitive.
      [
        'PATCH',
        path,
        { body: { name: 'Changed', email: 'TAKEN@hostile.example' } },
        409,
        'Conflict',
      ],
      [
        'PATCH',
        '/v1/accounts/acct_nobody0000000000000000',
        { body: { name: 'x' } },
        404,
        'NotFound',
      ],
      // The admin cannot lock itself out.
      ['PATCH', `/v1/accounts/${adminId}`, { body: { status: 'disabled' } }, 409, 'Conflict'],
    ];
    for (const [method, url, options, status, error] of cases) {
      const result = await call(method, url, options);
      expect({ url, status: result.status, error: result.body?.error }).toEqual({
        url,
        status,
        error,
      });
      expect(result.body.message).toEqual(expect.any(String));
    }
    // Nothing above changed the victim (the 409 carried a valid name too).
    const after = await call('GET', path);
    expect(after.body).toMatchObject({
      email: 'victim@hostile.example',
      name: 'Victim',
      status: 'active',
    });
    expect((await call('GET', `/v1/accounts/${adminId}`)).body.status).toBe('active');
  });
});

describe('disabling an account', () => {
  it('refuses at once its API keys, access tokens, refresh tokens, apps and sign-in; enabling restores them', async () => {
    const owner = await accountWithPassword(t, 'owner@disable.example');
    const key = (await issueKey(t, owner.id, { scopes: ['gateway'] })).secret;
    const { app: machine, clientSecret } = await t.app.identity.apps.create(
      { name: 'Backend', kind: 'machine', ownerAccountId: owner.id, scopes: ['gateway'] },
      { id: 'test' },
    );
    const machineConfig = await discover(t, machine.clientId, clientSecret);
    const accessToken = (await oidc.clientCredentialsGrant(machineConfig, { scope: 'gateway' }))
      .access_token;
    const redirectUri = 'http://127.0.0.1:9/callback';
    const { app: web, clientSecret: webSecret } = await t.app.identity.apps.create(
      {
        name: 'Web',
        kind: 'web',
        ownerAccountId: adminId,
        scopes: ['gateway'],
        redirectUris: [redirectUri],
      },
      { id: 'test' },
    );
    const webConfig = await discover(t, web.clientId, webSecret);
    const login = async () => {
      const p = await pkce();
      const callback = await browserLogin({
        browser: new Browser(),
        config: webConfig,
        redirectUri,
        scope: 'openid offline_access gateway',
        email: 'owner@disable.example',
        codeChallenge: p.challenge,
        state: p.state,
      });
      return oidc.authorizationCodeGrant(webConfig, callback, {
        pkceCodeVerifier: p.verifier,
        expectedState: p.state,
      });
    };
    const tokens = await login();

    // Every credential works, and the key and app are cached now.
    expect(await verifyStatus(key)).toBe(200);
    expect(await verifyStatus(accessToken)).toBe(200);
    expect(await verifyStatus(tokens.access_token)).toBe(200);

    const disabled = await call('PATCH', `/v1/accounts/${owner.id}`, {
      body: { status: 'disabled' },
    });
    expect(disabled.body.status).toBe('disabled');

    // No waiting: the change applied to this process before the PATCH answered.
    const refused = await fetch(`${t.url}/v1/auth/verify`, { headers: bearer(key) });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ error: 'Unauthorized', message: 'Invalid API key' });
    expect(await verifyStatus(accessToken)).toBe(401);
    expect(await verifyStatus(tokens.access_token)).toBe(401);
    await expect(
      oidc.clientCredentialsGrant(machineConfig, { scope: 'gateway' }),
    ).rejects.toMatchObject({ status: 401, cause: [{ parameters: { error: 'invalid_client' } }] });
    await expect(oidc.refreshTokenGrant(webConfig, tokens.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    await expect(login()).rejects.toThrow(/expected the consent page, got 401/);
    expect(
      (await call('GET', '/v1/accounts?status=disabled&q=disable.example')).body.accounts,
    ).toHaveLength(1);

    await call('PATCH', `/v1/accounts/${owner.id}`, { body: { status: 'active' } });
    expect(await verifyStatus(key)).toBe(200);
    expect(await verifyStatus(accessToken)).toBe(200);
    await oidc.clientCredentialsGrant(machineConfig, { scope: 'gateway' });
    expect((await login()).access_token).toEqual(expect.any(String));

    const audit = await t.app.database.db
      .selectFrom('audit_log')
      .select('action')
      .where('subject', '=', owner.id)
      .orderBy('id')
      .execute();
    expect(audit.map((a) => a.action)).toEqual(['account.disable', 'account.enable']);
  });
});
