// /v1/apps over HTTP as an admin: validated, documented, secrets shown once (customers' own
// apps: apps-self-service.test.ts).
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json } from '../support/http.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { discover, startIdentityApp } from './support.ts';
import type { IdentityTestApp } from './support.ts';
import { accountWithPassword } from '../support/fixtures.ts';

let t: IdentityTestApp;
let adminToken: string;
let userToken: string;
const validate = createResponseValidator();

async function tokenFor(ownerId: string, scopes: string[]) {
  const { app, clientSecret } = await t.app.identity.apps.create(
    { name: 'ops', kind: 'machine', ownerAccountId: ownerId, scopes },
    { id: 'test' },
  );
  const config = await discover(t, app.clientId, clientSecret);
  return (await oidc.clientCredentialsGrant(config, { scope: scopes.join(' ') })).access_token;
}

beforeAll(async () => {
  t = await startIdentityApp();
  const admin = await accountWithPassword(t, 'admin@example.com', { admin: true });
  const user = await accountWithPassword(t, 'user@example.com');
  adminToken = await tokenFor(admin.id, ['admin']);
  userToken = await tokenFor(user.id, ['gateway']);
});
afterAll(async () => t.close());

async function call(
  method: string,
  path: string,
  body?: unknown,
  token = adminToken,
  raw?: string,
) {
  const response = await fetch(`${t.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined || raw !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const payload = await json(response);
  const template = path
    .replace(/\?.*$/, '')
    .replace(/^\/v1\/apps\/[^/]+/, '/v1/apps/{id}')
    .replace(/\/users\/[^/]+$/, '/users/{external_id}');
  expect(validate(method, template, response.status, payload)).toBeNull();
  return { status: response.status, body: payload };
}

describe('/v1/apps', () => {
  it('creates, lists, shows, updates, rotates and disables an app', async () => {
    const created = await call('POST', '/v1/apps', {
      name: 'Studio',
      kind: 'web',
      redirect_uris: ['https://studio.example/callback'],
      allowed_origins: ['https://studio.example'],
      scopes: ['gateway', 'usage:read'],
    });
    expect(created.status).toBe(201);
    expect(created.body.client_secret).toMatch(/^thcs_/);
    expect(created.body.grant_types).toEqual([
      'authorization_code',
      'refresh_token',
      'urn:ietf:params:oauth:grant-type:token-exchange',
    ]);
    const id = created.body.id as string;

    // The secret is stored only as a keyed hash and never shown again.
    const row = await t.app.database.db
      .selectFrom('apps')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(created.body.client_secret);
    const shown = await call('GET', `/v1/apps/${id}`);
    expect(shown.status).toBe(200);
    expect(JSON.stringify(shown.body)).not.toContain('secret_hash');
    expect(shown.body).not.toHaveProperty('client_secret');

    const list = await call('GET', '/v1/apps');
    expect(list.body.apps.map((a: { id: string }) => a.id)).toContain(id);

    const updated = await call('PATCH', `/v1/apps/${id}`, {
      name: 'Studio 2',
      scopes: ['gateway'],
    });
    expect(updated.body).toMatchObject({ name: 'Studio 2', scopes: ['gateway'] });

    const rotated = await call('POST', `/v1/apps/${id}/rotate-secret`, { grace_seconds: 600 });
    expect(rotated.status).toBe(200);
    expect(rotated.body.client_secret).not.toBe(created.body.client_secret);
    expect(Date.parse(rotated.body.previous_secret_expires_at)).toBeGreaterThan(Date.now());

    const disabled = await call('PATCH', `/v1/apps/${id}`, { status: 'disabled' });
    expect(disabled.body.status).toBe('disabled');
    const audit = await t.app.database.db
      .selectFrom('audit_log')
      .select('action')
      .where('subject', '=', id)
      .execute();
    expect(audit.map((a) => a.action)).toEqual([
      'app.create',
      'app.update',
      'app.rotate_secret',
      'app.disable',
    ]);
  });

  it("requires a credential, and shows a customer only its own account's apps", async () => {
    const own = await call('GET', '/v1/apps', undefined, userToken);
    expect(own.status).toBe(200);
    expect(own.body.apps.map((a: { name: string }) => a.name)).toEqual(['ops']);
    expect((await call('GET', '/v1/apps', undefined, 'garbage')).status).toBe(401);
    const response = await fetch(`${t.url}/v1/apps`);
    expect(response.status).toBe(401);
  });

  it('refuses bad input with 4xx and writes nothing', async () => {
    const before = await t.app.database.db.selectFrom('apps').select('id').execute();
    const cases: Array<[unknown, string | undefined, number]> = [
      [undefined, '{"name":', 400],
      [undefined, '[]', 400],
      [{ name: 'x', kind: 'spaceship' }, undefined, 400],
      [{ name: 123, kind: 'web' }, undefined, 400],
      [{ name: 'x', kind: 'web' }, undefined, 400], // no redirect URI for the code flow
      [{ name: 'x', kind: 'web', redirect_uris: ['http://evil.example/cb'] }, undefined, 400],
      [{ name: 'x', kind: 'web', redirect_uris: ['https://a.example/cb#frag'] }, undefined, 400],
      [{ name: 'x', kind: 'web', redirect_uris: ['not a url'] }, undefined, 400],
      [{ name: 'x', kind: 'machine', grant_types: ['authorization_code'] }, undefined, 400],
      [{ name: 'x', kind: 'machine', scopes: ['root'] }, undefined, 400],
      [{ name: 'x', kind: 'machine', extra: true }, undefined, 400],
      [{ name: 'x', kind: 'machine', allowed_origins: ['https://a.example/path'] }, undefined, 400],
      [
        { name: 'x', kind: 'machine', owner_account_id: 'acct_0000000000000000000000' },
        undefined,
        404,
      ],
      [undefined, JSON.stringify({ name: 'x'.repeat(2_000_000), kind: 'web' }), 413],
    ];
    for (const [body, raw, status] of cases) {
      const result = await call('POST', '/v1/apps', body, adminToken, raw);
      expect(result.status, JSON.stringify(body ?? raw?.slice(0, 40))).toBe(status);
      expect(result.body).toMatchObject({ error: expect.any(String), message: expect.any(String) });
    }
    const text = await fetch(`${t.url}/v1/apps`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'text/plain' },
      body: 'name=x',
    });
    expect(text.status).toBe(415);
    const after = await t.app.database.db.selectFrom('apps').select('id').execute();
    expect(after.length).toBe(before.length);
  });

  it('refuses admin scope for an app whose owner is not an admin', async () => {
    const user = await accountWithPassword(t, 'plain@example.com');
    const result = await call('POST', '/v1/apps', {
      name: 'x',
      kind: 'machine',
      scopes: ['admin'],
      owner_account_id: user.id,
    });
    expect(result.status).toBe(400);
    expect(result.body.message).toContain('admin');
  });

  it('answers 404 for unknown ids and 400 for malformed ones', async () => {
    expect((await call('GET', '/v1/apps/app_0000000000000000000000')).status).toBe(404);
    expect((await call('PATCH', '/v1/apps/app_0000000000000000000000', { name: 'x' })).status).toBe(
      404,
    );
    expect(
      (await call('POST', '/v1/apps/app_0000000000000000000000/rotate-secret', {})).status,
    ).toBe(404);
    expect((await call('GET', '/v1/apps/nope')).status).toBe(400);
  });

  it('refuses to rotate a public app or with an out-of-range grace period', async () => {
    const created = await call('POST', '/v1/apps', {
      name: 'SPA',
      kind: 'public',
      redirect_uris: ['http://localhost:3000/cb'],
    });
    expect(created.body.client_secret).toBeNull();
    expect((await call('POST', `/v1/apps/${created.body.id}/rotate-secret`, {})).status).toBe(400);
    const web = await call('POST', '/v1/apps', { name: 'W', kind: 'machine' });
    expect(
      (await call('POST', `/v1/apps/${web.body.id}/rotate-secret`, { grace_seconds: -1 })).status,
    ).toBe(400);
    expect(
      (await call('POST', `/v1/apps/${web.body.id}/rotate-secret`, { grace_seconds: 'soon' }))
        .status,
    ).toBe(400);
  });
});

describe('/v1/apps/{id}/users', () => {
  it("lets the app's own backend and admins manage its users, and no one else", async () => {
    const owner = await accountWithPassword(t, 'backend-owner@example.com');
    const { app, clientSecret } = await t.app.identity.apps.create(
      { name: 'Backend', kind: 'machine', ownerAccountId: owner.id, scopes: ['gateway'] },
      { id: 'test' },
    );
    const config = await discover(t, app.clientId, clientSecret);
    const own = (await oidc.clientCredentialsGrant(config, { scope: 'gateway' })).access_token;

    const created = await call('PUT', `/v1/apps/${app.id}/users/customer-7`, undefined, own);
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ external_id: 'customer-7', status: 'active' });
    const same = await call('PUT', `/v1/apps/${app.id}/users/customer-7`, undefined, own);
    expect(same.body.id).toBe(created.body.id);

    const disabled = await call(
      'PATCH',
      `/v1/apps/${app.id}/users/customer-7`,
      { status: 'disabled' },
      own,
    );
    expect(disabled.body.status).toBe('disabled');
    const listed = await call('GET', `/v1/apps/${app.id}/users`, undefined, adminToken);
    expect(listed.body.users).toEqual([disabled.body]);

    // Another app's token (userToken belongs to a different app) may not touch these users.
    expect((await call('GET', `/v1/apps/${app.id}/users`, undefined, userToken)).status).toBe(403);
    expect((await call('PUT', `/v1/apps/${app.id}/users/x`, undefined, userToken)).status).toBe(
      403,
    );
    // Unknown user, unknown app, bad body.
    expect(
      (await call('PATCH', `/v1/apps/${app.id}/users/nobody`, { status: 'disabled' }, own)).status,
    ).toBe(404);
    expect(
      (await call('GET', '/v1/apps/app_0000000000000000000000/users', undefined, adminToken))
        .status,
    ).toBe(404);
    expect(
      (await call('PATCH', `/v1/apps/${app.id}/users/customer-7`, { status: 'gone' }, own)).status,
    ).toBe(400);
    expect(
      (await call('PUT', `/v1/apps/${app.id}/users/${'x'.repeat(256)}`, undefined, own)).status,
    ).toBe(400);
  });
});

describe('GET /v1/apps paging', () => {
  const ids = (body: { apps: Array<{ id: string }> }) => body.apps.map((a) => a.id);

  async function walk(limit: number, token: string) {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
      const page = await call('GET', `/v1/apps?limit=${limit}${query}`, undefined, token);
      expect(page.status).toBe(200);
      seen.push(...ids(page.body));
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor !== null && pages < 200);
    return { seen, pages };
  }

  it('walks every app exactly once, oldest first, through shared timestamps, for a customer and an admin', async () => {
    const owner = await accountWithPassword(t, 'pager@example.com');
    const token = await tokenFor(owner.id, ['gateway']);
    for (let i = 0; i < 11; i++) {
      await t.app.identity.apps.create(
        { name: `p${i}`, kind: 'machine', ownerAccountId: owner.id, scopes: ['gateway'] },
        { id: 'test' },
      );
    }
    const db = t.app.database.db;
    const own = (
      await db.selectFrom('apps').select('id').where('owner_account_id', '=', owner.id).execute()
    ).map((r) => r.id);
    // Four apps in one millisecond (different microseconds), five at the same microsecond.
    for (const [i, id] of own.slice(0, 4).entries()) {
      await sql`update apps set created_at = ${`2026-01-01T00:00:00.123${i}00Z`}::timestamptz where id = ${id}`.execute(
        db,
      );
    }
    await sql`update apps set created_at = '2026-01-01T00:00:00.500000Z' where id in (${sql.join(own.slice(4, 9))})`.execute(
      db,
    );
    const order = async (owned: boolean) =>
      (
        await sql<{ id: string }>`select id from apps ${
          owned ? sql`where owner_account_id = ${owner.id}` : sql``
        } order by created_at, id`.execute(db)
      ).rows.map((r) => r.id);

    const first = await call('GET', '/v1/apps', undefined, token);
    expect(ids(first.body)).toEqual(await order(true));
    expect(first.body.next_cursor).toBeNull();
    for (const limit of [1, 4]) {
      const { seen, pages } = await walk(limit, token);
      expect(seen).toEqual(await order(true));
      expect(pages).toBe(Math.ceil(12 / limit));
    }
    const all = await walk(5, adminToken);
    expect(all.seen).toEqual(await order(false));
    expect(new Set(all.seen).size).toBe(all.seen.length);
  });

  it('answers hostile limits and cursors from another list with 400', async () => {
    for (const limit of ['0', '-1', '201', 'abc', '1.5', '', '0x10']) {
      const response = await call('GET', `/v1/apps?limit=${encodeURIComponent(limit)}`);
      expect(response.status, `limit=${limit}`).toBe(400);
    }
    const adminCursor = (await call('GET', '/v1/apps?limit=1')).body.next_cursor as string;
    const other = await accountWithPassword(t, 'pager2@example.com');
    const otherToken = await tokenFor(other.id, ['gateway']);
    await t.app.identity.apps.create(
      { name: 'second', kind: 'machine', ownerAccountId: other.id, scopes: ['gateway'] },
      { id: 'test' },
    );
    const otherCursor = (await call('GET', '/v1/apps?limit=1', undefined, otherToken)).body
      .next_cursor as string;
    const [, , at, id] = Buffer.from(otherCursor, 'base64url').toString().split('|');
    const forge = (text: string) => Buffer.from(text).toString('base64url');
    const refused = [
      [adminCursor, userToken], // the operator's all-accounts list, in a customer's
      [otherCursor, userToken], // another account's list
      [otherCursor, adminToken], // one account's list, in the operator's
      [forge(`keys|${other.id}|${at}|${id}`), otherToken], // another endpoint's
      [forge('pager@example.com'), adminToken], // the shape of a /v1/accounts cursor
      [forge(`apps|${other.id}|${at}|key_0000000000000000000000`), otherToken],
      ['not a cursor', otherToken],
    ] as const;
    for (const [cursor, token] of refused) {
      const response = await call(
        'GET',
        `/v1/apps?cursor=${encodeURIComponent(cursor)}`,
        undefined,
        token,
      );
      expect(response.status, cursor).toBe(400);
      expect(response.body).toMatchObject({
        message: 'query.cursor: not a cursor returned by this API',
      });
    }
  });
});
