// The string rule (NUL characters and lone surrogates are refused where input enters), pure
// and at every boundary that is not a `defineRoute` JSON body (those the fuzz test covers):
// path ids and queries of any route, the console's forms, the sign-in form, and the forms
// oidc-provider parses itself. Each is a 400 and writes nothing; none is a 500.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findUncleanString, isCleanPath, isCleanString } from '../../src/platform/strings.ts';
import { adminKey, bearer, call } from '../support/credentials.ts';
import { post, signInHttp, startConsoleApp } from '../console/support.ts';
import type { HttpSession } from '../console/support.ts';
import type { TestApp } from '../support/app.ts';
import { Browser } from '../identity/support.ts';
import { accountWithPassword } from '../support/fixtures.ts';

const RULE = 'text must not contain NUL characters or unpaired UTF-16 surrogates';

describe('the rule, pure', () => {
  it('accepts ordinary text, paired surrogates (emoji) and other control characters', () => {
    for (const s of ['', 'plain', 'naïve café', '💩', 'tab\tnewline\n', '\u0001', '\uFFFD']) {
      expect(isCleanString(s), JSON.stringify(s)).toBe(true);
    }
  });

  it('refuses NUL and a lone high or low surrogate anywhere', () => {
    for (const s of ['\u0000', 'a\u0000', '\ud800', 'x\udc00y', '💩'.slice(0, 1), '\udfff💩']) {
      expect(isCleanString(s), JSON.stringify(s)).toBe(false);
    }
  });

  it('names the first offending place in nested input, keys included', () => {
    expect(findUncleanString({ a: ['ok', { b: 'x\u0000' }] })).toBe('a.1.b');
    expect(findUncleanString({ ['k\u0000']: 1 })).toBe('<key>');
    expect(findUncleanString([1, true, null, 'ok', { n: 2 }])).toBeNull();
    expect(findUncleanString('\ud800')).toBe('');
    let deep: unknown = 'ok';
    for (let i = 0; i < 100; i++) deep = [deep];
    expect(findUncleanString({ a: deep })).toBe('<too deep>');
  });

  it('decodes paths: %00 is refused, invalid UTF-8 escapes are left for the router', () => {
    expect(isCleanPath('/v1/keys/key_1')).toBe(true);
    expect(isCleanPath('/v1/keys/%F0%9F%92%A9')).toBe(true);
    expect(isCleanPath('/v1/keys/%00')).toBe(false);
    expect(isCleanPath('/v1/keys/a%00b/%ED%A0%80')).toBe(false);
    expect(isCleanPath('/v1/keys/%ED%A0%80')).toBe(true);
  });
});

describe('at every boundary', () => {
  let t: TestApp;
  let customer: HttpSession;
  let customerId: string;
  let admin: string;
  beforeAll(async () => {
    t = await startConsoleApp();
    customerId = (await accountWithPassword(t, 'strings@example.com')).id;
    customer = await signInHttp(t, 'strings@example.com');
    admin = (await adminKey(t)).secret;
  });
  afterAll(async () => t?.close());

  async function keyNames(): Promise<string[]> {
    const rows = await t.app.database.db
      .selectFrom('api_keys')
      .select('name')
      .where('account_id', '=', customerId)
      .execute();
    return rows.map((r) => r.name);
  }

  it('REST: path id, query and JSON body each answer 400 InvalidRequest naming the place', async () => {
    const path = await call(t, 'GET', '/v1/plans/plan_%00', { headers: bearer(admin) });
    expect(path.status).toBe(400);
    expect(path.body).toEqual({ error: 'InvalidRequest', message: `path: ${RULE}` });

    const query = await call(t, 'GET', '/v1/accounts?q=a%00b', { headers: bearer(admin) });
    expect(query.status).toBe(400);
    expect(query.body).toMatchObject({ error: 'InvalidRequest', message: `query.q: ${RULE}` });

    const body = await call(t, 'POST', '/v1/keys', {
      headers: bearer(admin),
      body: { account_id: customerId, name: 'bad\ud800name' },
    });
    expect(body.status).toBe(400);
    expect(body.body).toMatchObject({
      error: 'InvalidRequest',
      message: `body.name: ${RULE}`,
      issues: [{ location: 'body', path: 'name', message: RULE }],
    });

    const nested = await call(t, 'POST', '/v1/keys', {
      headers: bearer(admin),
      body: { name: JSON.parse(`${'['.repeat(100)}${']'.repeat(100)}`) },
    });
    expect(nested.status).toBe(400);
    expect(nested.body).toMatchObject({
      error: 'InvalidRequest',
      message: 'body: nested more than 64 levels deep',
    });
  });

  it('console form posts: a 400 page, and the key is not created', async () => {
    // Browsers encode form text as UTF-8, so a lone surrogate cannot arrive from a form
    // (it becomes U+FFFD); a NUL can, as %00.
    const before = await keyNames();
    const csrf = encodeURIComponent(customer.csrf);
    for (const name of ['nul%00name', '%00']) {
      const response = await post(
        t,
        customer,
        '/console/keys',
        {},
        {
          body: `name=${name}&kind=backend&scopes=gateway&csrf=${csrf}`,
        },
      );
      expect(response.status).toBe(400);
      expect(response.text).toContain('NUL character or an unpaired surrogate');
    }
    expect(await keyNames()).toEqual(before);
  });

  it('the sign-in form: 400, not a failed (or crashed) account lookup', async () => {
    const browser = new Browser();
    const start = await browser.follow(`${t.url}/console/login`, `${t.url}/console/callback`);
    const html = await start.response.text();
    const done = await browser.submit(
      start.url,
      html,
      '/login',
      { email: 'strings\u0000@example.com', password: 'x' },
      `${t.url}/console/callback`,
    );
    expect(done.response.status).toBe(400);
    expect(await done.response.json()).toEqual({
      error: 'InvalidRequest',
      message: `body.email: ${RULE}`,
    });
  });

  it("oidc-provider's own endpoints: NUL in a query or a form is never a 500", async () => {
    const auth = await fetch(`${t.url}/oidc/auth?client_id=%00&response_type=code`);
    expect(auth.status).toBe(400);
    expect(await auth.json()).toMatchObject({ error: 'InvalidRequest' });
    const interaction = await fetch(`${t.url}/interaction/%00`);
    expect(interaction.status).toBe(400);
    // A form body oidc-provider parses itself: the client lookup finds nothing (invalid_client).
    for (const clientId of ['\u0000', '\ud800x']) {
      const token = await fetch(`${t.url}/oidc/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId }),
      });
      expect(token.status).toBeLessThan(500);
      expect(token.status).toBeGreaterThanOrEqual(400);
    }
    const device = await fetch(`${t.url}/oidc/device/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: 'a\u0000b' }),
    });
    expect(device.status).toBeLessThan(500);
  });
});
