// Regression tests for the tenant-isolation findings of issue #16 (1–4), each as reproduced.
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleClient } from '../../src/console/index.ts';
import { API_KEY_TOKEN_TYPE, APP_USER_TOKEN_TYPE } from '../../src/identity/index.ts';
import { USAGE_EVENT_TYPE } from '../../src/metering/index.ts';
import { bearer, call, issueKey } from '../support/credentials.ts';
import { discover, startIdentityApp } from '../identity/support.ts';
import type { IdentityTestApp } from '../identity/support.ts';
import { accountWithPassword } from '../support/fixtures.ts';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const SCOPES = ['gateway', 'usage:read', 'usage:write', 'billing:read'];

let t: IdentityTestApp;
let victim: { accountId: string; appId: string };
let attacker: {
  accountId: string;
  appId: string;
  key: string;
  keyId: string;
  config: oidc.Configuration;
};

async function machineApp(ownerAccountId: string) {
  const { app, clientSecret } = await t.app.identity.apps.create(
    { name: 'Backend', kind: 'machine', ownerAccountId, scopes: SCOPES },
    { id: 'test' },
  );
  return { app, config: await discover(t, app.clientId, clientSecret) };
}

beforeAll(async () => {
  t = await startIdentityApp();
  const victimAccount = await accountWithPassword(t, 'victim@example.com');
  victim = { accountId: victimAccount.id, appId: (await machineApp(victimAccount.id)).app.id };
  const attackerAccount = await accountWithPassword(t, 'attacker@example.com');
  const { app, config } = await machineApp(attackerAccount.id);
  const key = await issueKey(t, attackerAccount.id, { scopes: SCOPES as never });
  attacker = {
    accountId: attackerAccount.id,
    appId: app.id,
    key: key.secret,
    keyId: key.key.id,
    config,
  };
});
afterAll(async () => t?.close());

const appToken = async () =>
  (await oidc.clientCredentialsGrant(attacker.config, { scope: SCOPES.join(' ') })).access_token;
const endUserToken = async (externalId: string) =>
  (
    await oidc.genericGrantRequest(attacker.config, TOKEN_EXCHANGE, {
      subject_token: externalId,
      subject_token_type: APP_USER_TOKEN_TYPE,
    })
  ).access_token;
const keyToken = async (secret: string) =>
  (
    await oidc.genericGrantRequest(attacker.config, TOKEN_EXCHANGE, {
      subject_token: secret,
      subject_token_type: API_KEY_TOKEN_TYPE,
    })
  ).access_token;

let n = 0;
function event(subject: string, source = 'tollhouse/gateway', data: Record<string, unknown> = {}) {
  return {
    specversion: '1.0',
    type: USAGE_EVENT_TYPE,
    source,
    id: `finding-${++n}`,
    time: new Date().toISOString(),
    subject,
    data: {
      pipeline: 'text-to-image',
      unit: 'requests',
      quantity: '1',
      fee_wei: '5000000000000000000',
      ...data,
    },
  };
}

async function eventsOf(accountId: string) {
  return t.app.database.db
    .selectFrom('usage_events')
    .select('event_id')
    .where('account_id', '=', accountId)
    .execute();
}

describe('finding 1: usage charged to another account', () => {
  it('refuses, with every kind of credential, events whose subject is another account (403, nothing recorded)', async () => {
    const credentials = {
      key: attacker.key,
      app_client: await appToken(),
      derived: await keyToken(attacker.key),
    };
    for (const [kind, secret] of Object.entries(credentials)) {
      for (const source of ['tollhouse/gateway', 'urn:attacker:collector']) {
        const response = await call(t, 'POST', '/v1/usage/events', {
          headers: bearer(secret),
          body: [event(victim.accountId, source)],
        });
        expect(response.status, `${kind} ${source}`).toBe(403);
        expect(response.body.error).toBe('Forbidden');
      }
    }
    // An app end user cannot write usage at all.
    const endUser = await call(t, 'POST', '/v1/usage/events', {
      headers: bearer(await endUserToken('eve')),
      body: [event(attacker.accountId, 'urn:attacker:collector')],
    });
    expect(endUser.status).toBe(403);
    expect(await eventsOf(victim.accountId)).toEqual([]);
  });

  it('reserves tollhouse/* sources for tollhouse, even for the account itself', async () => {
    const response = await call(t, 'POST', '/v1/usage/events', {
      headers: bearer(attacker.key),
      body: [event(attacker.accountId, 'tollhouse/gateway')],
    });
    expect(response.status).toBe(403);
    expect(response.body.message).toMatch(/reserved for tollhouse/);
    // Its own account, under its own source: accepted.
    const own = await call(t, 'POST', '/v1/usage/events', {
      headers: bearer(attacker.key),
      body: [event(attacker.accountId, 'urn:attacker:collector', { fee_wei: '1' })],
    });
    expect(own.status).toBe(200);
    expect(own.body.accepted).toBe(1);
  });

  it("refuses an app id of another account's in an event, and an app client's events for another app", async () => {
    const foreignApp = await call(t, 'POST', '/v1/usage/events', {
      headers: bearer(attacker.key),
      body: [event(attacker.accountId, 'urn:attacker:collector', { app_id: victim.appId })],
    });
    expect(foreignApp.status).toBe(403);
    const otherApp = await call(t, 'POST', '/v1/usage/events', {
      headers: bearer(await appToken()),
      body: [event(attacker.accountId, 'urn:attacker:collector', { app_id: victim.appId })],
    });
    expect(otherApp.status).toBe(403);
  });

  it("does not give the console's sign-in client usage:write", () => {
    expect(consoleClient('http://127.0.0.1').apiScopes).not.toContain('usage:write');
  });
});

describe("finding 2: an app end user's token minting account keys", () => {
  it('refuses keys and streams to a token acting for an app user (403), and the token dies with the user', async () => {
    const token = await endUserToken('mallory');
    for (const [method, path, body] of [
      ['GET', '/v1/keys', undefined],
      ['POST', '/v1/keys', { name: 'forever', scopes: ['gateway', 'usage:write'] }],
      ['POST', '/v1/streams', { name: 'stream' }],
      ['GET', '/v1/streams', undefined],
    ] as const) {
      const response = await call(t, method, path, { headers: bearer(token), body });
      expect(response.status, `${method} ${path}`).toBe(403);
      expect(response.body.error).toBe('Forbidden');
    }
    expect((await call(t, 'GET', '/v1/usage', { headers: bearer(token) })).status).toBe(200);
    const disabled = await call(t, 'PATCH', `/v1/apps/${attacker.appId}/users/mallory`, {
      headers: bearer(await appToken()),
      body: { status: 'disabled' },
    });
    expect(disabled.status).toBe(200);
    // Polls: this replica applies the change when its NOTIFY arrives.
    await expect
      .poll(async () => (await call(t, 'GET', '/v1/usage', { headers: bearer(token) })).status)
      .toBe(401);
  });
});

describe("finding 3: a key bound to another account's app", () => {
  it("refuses another account's app id on a new key (404, no key written)", async () => {
    const before = await t.app.database.db
      .selectFrom('api_keys')
      .select('id')
      .where('account_id', '=', attacker.accountId)
      .execute();
    const response = await call(t, 'POST', '/v1/keys', {
      headers: bearer(attacker.key),
      body: { name: 'bound', app_id: victim.appId },
    });
    expect(response.status).toBe(404);
    expect(response.body).toEqual({
      error: 'NotFound',
      message: `No app ${victim.appId}`,
    });
    const after = await t.app.database.db
      .selectFrom('api_keys')
      .select('id')
      .where('account_id', '=', attacker.accountId)
      .execute();
    expect(after).toEqual(before);
    // Its own app: accepted.
    const own = await call(t, 'POST', '/v1/keys', {
      headers: bearer(attacker.key),
      body: { name: 'bound', app_id: attacker.appId },
    });
    expect(own.status).toBe(201);
    expect(own.body.key.app_id).toBe(attacker.appId);
  });
});

describe('finding 4: tokens made from a revoked key', () => {
  it('refuses a token made from a key once the key is revoked (and one made from a key rotated without grace)', async () => {
    for (const end of ['revoke', 'rotate'] as const) {
      const parent = await issueKey(t, attacker.accountId, { scopes: ['gateway', 'usage:read'] });
      const token = await keyToken(parent.secret);
      expect((await call(t, 'GET', '/v1/usage', { headers: bearer(token) })).status).toBe(200);
      const ended = await call(t, 'POST', `/v1/keys/${parent.key.id}/${end}`, {
        headers: bearer(attacker.key),
        ...(end === 'rotate' ? { body: { grace_seconds: 0 } } : {}),
      });
      expect(ended.status).toBeLessThan(300);
      // The revoking replica forgets the key at once (the request's own commit).
      const refused = await call(t, 'GET', '/v1/usage', { headers: bearer(token) });
      expect(refused.status, end).toBe(401);
      expect(refused.body).toEqual({ error: 'Unauthorized', message: 'Invalid API key' });
    }
  });

  it("refuses an app's tokens once the app is disabled", async () => {
    const { app, config } = await machineApp(attacker.accountId);
    const token = (await oidc.clientCredentialsGrant(config, { scope: 'usage:read' })).access_token;
    expect((await call(t, 'GET', '/v1/usage', { headers: bearer(token) })).status).toBe(200);
    const disabled = await call(t, 'PATCH', `/v1/apps/${app.id}`, {
      headers: bearer(attacker.key),
      body: { status: 'disabled' },
    });
    expect(disabled.status).toBe(200);
    await expect
      .poll(async () => (await call(t, 'GET', '/v1/usage', { headers: bearer(token) })).status)
      .toBe(401);
  });
});
