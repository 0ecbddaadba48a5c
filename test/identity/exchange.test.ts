// Token exchange (RFC 8693): a machine client acting for its app users, and an API key
// exchanged for a short-lived access token.
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY_TOKEN_TYPE, APP_USER_TOKEN_TYPE } from '../../src/identity/index.ts';
import { CLI_CALLER } from '../../src/keys/index.ts';
import { issueKey } from '../support/credentials.ts';
import { discover, startIdentityApp } from './support.ts';
import type { IdentityTestApp } from './support.ts';
import { accountWithPassword } from '../support/fixtures.ts';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
let t: IdentityTestApp;
let ownerId: string;

beforeAll(async () => {
  t = await startIdentityApp();
  ownerId = (await accountWithPassword(t, 'builder@example.com')).id;
});
afterAll(async () => t.close());

async function machine(scopes = ['gateway', 'usage:read']) {
  const { app, clientSecret } = await t.app.identity.apps.create(
    { name: 'Builder Backend', kind: 'machine', ownerAccountId: ownerId, scopes },
    { id: 'test' },
  );
  return { app, config: await discover(t, app.clientId, clientSecret) };
}

describe('machine client acting for an app user', () => {
  it("issues the app user's access token, creating the user on first use", async () => {
    const { app, config } = await machine();
    const tokens = await oidc.genericGrantRequest(config, TOKEN_EXCHANGE, {
      subject_token: 'customer-42',
      subject_token_type: APP_USER_TOKEN_TYPE,
      scope: 'gateway',
    });
    expect(tokens.issued_token_type).toBe('urn:ietf:params:oauth:token-type:access_token');
    const principal = await t.app.authenticator.authenticate(`Bearer ${tokens.access_token}`, {
      origin: null,
    });
    expect(principal).toMatchObject({
      via: 'access_token',
      accountId: ownerId, // the app's owner pays
      appId: app.id,
      clientId: app.clientId,
      endUserId: 'customer-42',
      scopes: ['gateway'],
    });
    const users = await t.app.database.db
      .selectFrom('app_users')
      .selectAll()
      .where('app_id', '=', app.id)
      .execute();
    expect(users.map((u) => u.external_id)).toEqual(['customer-42']);

    // The same external id is the same user.
    const again = await oidc.genericGrantRequest(config, TOKEN_EXCHANGE, {
      subject_token: 'customer-42',
      subject_token_type: APP_USER_TOKEN_TYPE,
    });
    const payload = JSON.parse(
      Buffer.from(again.access_token.split('.')[1]!, 'base64url').toString(),
    );
    expect(payload.sub).toBe(users[0]!.id);
    expect(payload.act).toEqual({ sub: app.clientId });
  });

  it('refuses scopes the app does not have, and never passes admin on', async () => {
    const { config } = await machine(['gateway']);
    await expect(
      oidc.genericGrantRequest(config, TOKEN_EXCHANGE, {
        subject_token: 'customer-1',
        subject_token_type: APP_USER_TOKEN_TYPE,
        scope: 'billing:read',
      }),
    ).rejects.toMatchObject({ error: 'invalid_scope' });
  });

  it('refuses a disabled app user', async () => {
    const { app, config } = await machine();
    await t.app.identity.apps.ensureAppUser(app.id, 'banned');
    await t.app.database.db
      .updateTable('app_users')
      .set({ status: 'disabled' })
      .where('external_id', '=', 'banned')
      .execute();
    await expect(
      oidc.genericGrantRequest(config, TOKEN_EXCHANGE, {
        subject_token: 'banned',
        subject_token_type: APP_USER_TOKEN_TYPE,
      }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('refuses a public client and an unknown subject token type', async () => {
    const { app } = await t.app.identity.apps.create(
      {
        name: 'SPA',
        kind: 'public',
        ownerAccountId: ownerId,
        redirectUris: ['https://spa.example/cb'],
      },
      { id: 'test' },
    );
    const config = await discover(t, app.clientId, null);
    await expect(
      oidc.genericGrantRequest(config, TOKEN_EXCHANGE, {
        subject_token: 'customer-1',
        subject_token_type: APP_USER_TOKEN_TYPE,
      }),
    ).rejects.toMatchObject({ error: 'unauthorized_client' });
    const { config: backend } = await machine();
    await expect(
      oidc.genericGrantRequest(backend, TOKEN_EXCHANGE, {
        subject_token: 'x',
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      }),
    ).rejects.toMatchObject({ error: 'invalid_request' });
  });
});

describe('API key exchange', () => {
  // The API-key verifier belongs to the keys capability; without it no API key is valid here.
  it('refuses a credential that is not a valid API key, including an access token', async () => {
    const { config } = await machine();
    await expect(
      oidc.genericGrantRequest(config, TOKEN_EXCHANGE, {
        subject_token: 'th_sk_not_a_real_key',
        subject_token_type: API_KEY_TOKEN_TYPE,
      }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
    const own = await oidc.clientCredentialsGrant(config, { scope: 'gateway' });
    await expect(
      oidc.genericGrantRequest(config, TOKEN_EXCHANGE, {
        subject_token: own.access_token,
        subject_token_type: API_KEY_TOKEN_TYPE,
      }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });
});

describe('API key exchange with real keys', () => {
  it('turns a backend key into a short-lived access token for the same account and key', async () => {
    const { config } = await machine();
    const accountId = (await accountWithPassword(t, 'key-owner@example.com')).id;
    const key = await issueKey(t, accountId, { scopes: ['gateway', 'usage:read'] });
    const tokens = await oidc.genericGrantRequest(config, TOKEN_EXCHANGE, {
      subject_token: key.secret,
      subject_token_type: API_KEY_TOKEN_TYPE,
      scope: 'gateway',
    });
    expect(tokens.expires_in).toBeLessThanOrEqual(300);
    const principal = await t.app.authenticator.authenticate(`Bearer ${tokens.access_token}`, {
      origin: null,
    });
    expect(principal).toMatchObject({
      via: 'access_token',
      accountId,
      keyId: key.key.id,
      scopes: ['gateway'],
    });
    // The token never carries more than the key had.
    await expect(
      oidc.genericGrantRequest(config, TOKEN_EXCHANGE, {
        subject_token: key.secret,
        subject_token_type: API_KEY_TOKEN_TYPE,
        scope: 'admin',
      }),
    ).rejects.toMatchObject({ error: expect.stringMatching(/invalid_(scope|grant)/) });
  });

  it('refuses a browser key: exchanging it would shed its origin and resource limits', async () => {
    const { config } = await machine();
    const accountId = (await accountWithPassword(t, 'browser-owner@example.com')).id;
    const key = await issueKey(t, accountId, {
      kind: 'browser',
      scopes: ['gateway'],
      allowedOrigins: ['https://app.example.com'],
      allowedResources: ['text-to-image'],
    });
    await expect(
      oidc.genericGrantRequest(config, TOKEN_EXCHANGE, {
        subject_token: key.secret,
        subject_token_type: API_KEY_TOKEN_TYPE,
      }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('refuses a revoked key', async () => {
    const { config } = await machine();
    const accountId = (await accountWithPassword(t, 'revoked-owner@example.com')).id;
    const key = await issueKey(t, accountId, { scopes: ['gateway'] });
    await t.app.keys.service.revoke(CLI_CALLER, key.key.id);
    await expect(
      oidc.genericGrantRequest(config, TOKEN_EXCHANGE, {
        subject_token: key.secret,
        subject_token_type: API_KEY_TOKEN_TYPE,
      }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });
});
