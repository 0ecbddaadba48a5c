// The token endpoint's per-client and per-IP limits (login limits: hostile.test.ts).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startIdentityApp } from './support.ts';
import type { IdentityTestApp } from './support.ts';
import { accountWithPassword } from '../support/fixtures.ts';

let t: IdentityTestApp;
beforeAll(async () => {
  t = await startIdentityApp({
    TOKEN_REQUESTS_PER_CLIENT_PER_MINUTE: '2',
    TOKEN_REQUESTS_PER_IP_PER_MINUTE: '5',
  });
});
afterAll(async () => t.close());

it('limits token requests per client, then per IP, with Retry-After and an OAuth error body', async () => {
  const owner = await accountWithPassword(t, 'limits@example.com');
  const clients = await Promise.all(
    ['A', 'B', 'C'].map((name) =>
      t.app.identity.apps.create(
        { name, kind: 'machine', ownerAccountId: owner.id, scopes: ['gateway'] },
        { id: 'test' },
      ),
    ),
  );
  const request = async (i: number) => {
    const { app, clientSecret } = clients[i]!;
    return fetch(`${t.issuer}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${app.clientId}:${clientSecret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'grant_type=client_credentials&scope=gateway',
    });
  };
  const statuses = [];
  for (const i of [0, 0, 0, 1, 1]) statuses.push((await request(i)).status);
  expect(statuses).toEqual([200, 200, 429, 200, 200]);
  const limited = await request(2); // client C's first request, but the IP's sixth
  expect(limited.status).toBe(429);
  expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
  expect(await limited.json()).toEqual({
    error: 'slow_down',
    error_description: 'too many token requests',
  });
});
