// Signing keys: sealed at rest, published before they sign, retired after the longest token
// lifetime; and the sweep of expired OIDC payloads.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import { sweepExpiredPayloads } from '../../src/identity/index.ts';
import { createLogger } from '../../src/platform/log.ts';
import { startServer } from '../../src/platform/server.ts';
import { startIdentityApp } from './support.ts';
import type { IdentityTestApp } from './support.ts';
import { eventually } from '../support/eventually.ts';
import { accountWithPassword } from '../support/fixtures.ts';

let t: IdentityTestApp;
beforeAll(async () => {
  t = await startIdentityApp();
});
afterAll(async () => t.close());

async function clientCredentials(baseUrl: string, clientId: string, secret: string) {
  const response = await fetch(`${baseUrl}/oidc/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'gateway' }),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { access_token: string }).access_token;
}

const kidOf = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()).kid as string;

describe('signing keys', () => {
  it('are created on first start, sealed at rest, and all published in the JWKS', async () => {
    const rows = await t.app.database.db.selectFrom('signing_keys').selectAll().execute();
    expect(rows.map((r) => r.status).sort()).toEqual(['active', 'next']);
    for (const row of rows) {
      expect(row.private_jwk_sealed).toMatch(/^v1\./);
      expect(row.private_jwk_sealed).not.toContain('"d"');
      expect(row.public_jwk).not.toHaveProperty('d');
    }
    const jwks = (await (await fetch(`${t.issuer}/jwks`)).json()) as {
      keys: Array<{ kid: string; d?: string }>;
    };
    expect(jwks.keys.map((k) => k.kid).sort()).toEqual(rows.map((r) => r.kid).sort());
    expect(jwks.keys.every((k) => k.d === undefined)).toBe(true);
  });

  it('rotate: the published next key signs at once (and after a restart), and tokens from either key verify', async () => {
    const owner = await accountWithPassword(t, 'keys@example.com');
    const { app, clientSecret } = await t.app.identity.apps.create(
      { name: 'M', kind: 'machine', ownerAccountId: owner.id, scopes: ['gateway'] },
      { id: 'test' },
    );
    const before = await t.app.database.db.selectFrom('signing_keys').selectAll().execute();
    const active = before.find((r) => r.status === 'active')!;
    const next = before.find((r) => r.status === 'next')!;
    const oldToken = await clientCredentials(t.url, app.clientId, clientSecret!);
    expect(kidOf(oldToken)).toBe(active.kid);

    const rotatedAt = Date.now();
    const result = await t.app.identity.rotateKeys();
    expect(result).toMatchObject({ activeKid: next.kid, retiredKid: active.kid });
    // The retired key stays published for the longest token lifetime (id tokens: 1 h).
    expect(result.retireAfter.getTime()).toBeGreaterThanOrEqual(rotatedAt + 3_600_000);

    // This process switched before rotateKeys returned: it signs with the promoted key and
    // publishes the new next one, without a restart.
    expect(kidOf(await clientCredentials(t.url, app.clientId, clientSecret!))).toBe(next.kid);
    const live = (await (await fetch(`${t.issuer}/jwks`)).json()) as {
      keys: Array<{ kid: string }>;
    };
    expect(live.keys.map((k) => k.kid)).toEqual(
      expect.arrayContaining([active.kid, next.kid, result.nextKid]),
    );

    // A "restarted replica": a second app over the same database.
    const restarted = await createApp({
      config: t.app.config,
      log: createLogger({ level: 'silent' }),
      database: t.app.database,
      migrate: false,
    });
    const server = await startServer(restarted.handler, {
      host: '127.0.0.1',
      port: 0,
      shutdownTimeoutMs: 1000,
      log: restarted.log,
    });
    try {
      const newToken = await clientCredentials(
        `http://127.0.0.1:${server.port}`,
        app.clientId,
        clientSecret!,
      );
      expect(kidOf(newToken)).toBe(next.kid);
      // The replica that has not restarted already knew the next key, and the restarted one
      // still knows the retired key.
      await expect(
        t.app.authenticator.authenticate(`Bearer ${newToken}`, { origin: null }),
      ).resolves.toMatchObject({ appId: app.id });
      await expect(
        restarted.authenticator.authenticate(`Bearer ${oldToken}`, { origin: null }),
      ).resolves.toMatchObject({ appId: app.id });
      const jwks = (await (await fetch(`http://127.0.0.1:${server.port}/oidc/jwks`)).json()) as {
        keys: Array<{ kid: string }>;
      };
      expect(jwks.keys.map((k) => k.kid)).toEqual(
        expect.arrayContaining([active.kid, next.kid, result.nextKid]),
      );
    } finally {
      await server.close();
      await restarted.close();
    }
  });
});

describe('app changes across replicas', () => {
  it('a replica that cached an app stops issuing its tokens once another replica disables it', async () => {
    const owner = await accountWithPassword(t, 'replicas@example.com');
    const { app, clientSecret } = await t.app.identity.apps.create(
      { name: 'M', kind: 'machine', ownerAccountId: owner.id, scopes: ['gateway'] },
      { id: 'test' },
    );
    const other = await createApp({
      config: t.app.config,
      log: createLogger({ level: 'silent' }),
      database: t.app.database,
      migrate: false,
    });
    const server = await startServer(other.handler, {
      host: '127.0.0.1',
      port: 0,
      shutdownTimeoutMs: 1000,
      log: other.log,
    });
    const otherUrl = `http://127.0.0.1:${server.port}`;
    try {
      await clientCredentials(otherUrl, app.clientId, clientSecret!); // cached there now
      await t.app.identity.apps.update(app.id, { status: 'disabled' }, { id: 'test' });
      // NOTIFY is asynchronous: poll until the other replica refuses.
      await eventually(
        async () =>
          (
            await fetch(`${otherUrl}/oidc/token`, {
              method: 'POST',
              headers: {
                authorization: `Basic ${Buffer.from(`${app.clientId}:${clientSecret}`).toString('base64')}`,
                'content-type': 'application/x-www-form-urlencoded',
              },
              body: 'grant_type=client_credentials&scope=gateway',
            })
          ).status === 401,
        { what: 'the other replica to refuse the disabled app' },
      );
    } finally {
      await server.close();
      await other.close();
    }
  });
});

describe('expired payload sweep', () => {
  it('deletes expired rows and keeps live ones', async () => {
    const db = t.app.database.db;
    await db
      .insertInto('oidc_payloads')
      .values([
        {
          model: 'Interaction',
          id: 'old',
          payload: '{}',
          grant_id: null,
          user_code: null,
          uid: null,
          expires_at: new Date(Date.now() - 1000),
          consumed_at: null,
        },
        {
          model: 'Interaction',
          id: 'live',
          payload: '{}',
          grant_id: null,
          user_code: null,
          uid: null,
          expires_at: new Date(Date.now() + 60_000),
          consumed_at: null,
        },
      ])
      .execute();
    expect(await sweepExpiredPayloads(db)).toBeGreaterThanOrEqual(1);
    const left = await db
      .selectFrom('oidc_payloads')
      .select('id')
      .where('model', '=', 'Interaction')
      .execute();
    expect(left.map((r) => r.id)).toContain('live');
    expect(left.map((r) => r.id)).not.toContain('old');
    const { rows } = await sql<{
      n: number;
    }>`select count(*)::int as n from oidc_payloads where expires_at < now()`.execute(db);
    expect(rows[0]!.n).toBe(0);
  });
});
