// Editing an app from the console over real HTTP: the app's page shows its saved values, a save
// goes through PATCH /v1/apps/{id} and the authorization endpoint then honours the new redirect
// URI; cross-site, forged, invalid, oversized and other-account edits are refused with a page
// that says why, keep what was typed (escaped), and change nothing.
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import { browserLogin, discover, pkce } from '../identity/support.ts';
import { Browser } from '../identity/support.ts';
import {
  appRows,
  authorize,
  otherAccountApp,
  post,
  signInHttp,
  startConsoleApp,
} from './support.ts';
import type { HttpSession } from './support.ts';
import { accountWithPassword } from '../support/fixtures.ts';

let t: TestApp;
let customer: HttpSession;
let customerId: string;
let appId: string;
let clientSecret: string;
let otherApp: string;

beforeAll(async () => {
  t = await startConsoleApp();
  customerId = (await accountWithPassword(t, 'edit@example.com')).id;
  const other = await accountWithPassword(t, 'other@example.com');
  customer = await signInHttp(t, 'edit@example.com');
  const created = await t.app.identity.apps.create(
    {
      name: 'Shop',
      kind: 'web',
      ownerAccountId: customerId,
      redirectUris: ['https://shop.example/callback'],
      allowedOrigins: ['https://shop.example'],
    },
    { id: 'test' },
  );
  appId = created.app.id;
  clientSecret = created.clientSecret!;
  otherApp = await otherAccountApp(t, other.id);
});

afterAll(async () => {
  await t?.close();
});

async function get(path: string) {
  const response = await fetch(`${t.url}${path}`, {
    headers: { cookie: `tollhouse_console=${customer.cookie}` },
    redirect: 'manual',
  });
  return { status: response.status, text: await response.text() };
}

/** The edit form as the app's page sends it, with `changes` applied. */
function editForm(changes: Record<string, string | string[]> = {}) {
  return {
    csrf: customer.csrf,
    name: 'Shop',
    redirect_uris: 'https://shop.example/callback',
    post_logout_redirect_uris: '',
    allowed_origins: 'https://shop.example',
    scopes: ['', 'gateway'],
    ...changes,
  };
}

describe('console: editing an app', () => {
  it("links each app to its page, which shows the edit form filled in with the app's values", async () => {
    const list = await get('/console/apps');
    expect(list.text).toContain(`href="/console/apps/${appId}"`);
    const page = await get(`/console/apps/${appId}`);
    expect(page.status).toBe(200);
    expect(page.text).toContain(`<form method="post" action="/console/apps/${appId}">`);
    expect(page.text).toContain('value="Shop"');
    expect(page.text).toContain('https://shop.example/callback</textarea>');
    expect(page.text).toContain('https://shop.example</textarea>');
    expect(page.text).toMatch(/value="gateway"\s+checked/);
    expect(page.text).not.toMatch(/value="usage:read"\s+checked/);
    // The console does not offer the admin scope to an app.
    expect(page.text).not.toContain('value="admin"');
  });

  it('saves name, redirect URIs, post-logout URIs, origins and scopes through PATCH /v1/apps/{id}', async () => {
    const saved = await post(
      t,
      customer,
      `/console/apps/${appId}`,
      editForm({
        name: 'Shop (new)',
        // A comma is part of a URI, not a separator; http is fine on loopback.
        redirect_uris: 'https://shop.example/callback\r\nhttps://shop.example/cb?v=1,2\r\n',
        post_logout_redirect_uris: 'http://localhost:3000/bye',
        allowed_origins: 'https://shop.example\nhttps://admin.shop.example',
        scopes: ['', 'gateway', 'usage:read'],
      }),
    );
    expect(saved.status).toBe(303);
    expect(saved.location).toBe(`/console/apps/${appId}?done=saved`);
    expect(await t.app.identity.apps.get(appId)).toMatchObject({
      name: 'Shop (new)',
      redirectUris: ['https://shop.example/callback', 'https://shop.example/cb?v=1,2'],
      postLogoutRedirectUris: ['http://localhost:3000/bye'],
      allowedOrigins: ['https://shop.example', 'https://admin.shop.example'],
      scopes: ['gateway', 'usage:read'],
      status: 'active',
    });
    // Made by the customer's own token through the API: the audit names the customer.
    const audit = await t.app.database.db
      .selectFrom('audit_log')
      .select(['action', 'actor'])
      .where('subject', '=', appId)
      .orderBy('id', 'desc')
      .executeTakeFirstOrThrow();
    expect(audit).toEqual({ action: 'app.update', actor: customerId });

    const page = await get(`/console/apps/${appId}?done=saved`);
    expect(page.text).toContain('role="status">The changes are saved.');
    expect(page.text).toContain(
      'https://shop.example/callback\nhttps://shop.example/cb?v=1,2</textarea>',
    );
    expect(page.text).toMatch(/value="usage:read"\s+checked/);

    // Unticking every scope is sent too (the form's empty `scopes` says the list was shown).
    const none = await post(t, customer, `/console/apps/${appId}`, {
      ...editForm({ name: 'Shop (new)', scopes: '' }),
      redirect_uris: 'https://shop.example/callback\nhttps://shop.example/cb?v=1,2',
    });
    expect(none.status).toBe(303);
    expect((await t.app.identity.apps.get(appId)).scopes).toEqual([]);
    // A form without a field leaves that field as it is.
    const nameOnly = await post(t, customer, `/console/apps/${appId}`, {
      csrf: customer.csrf,
      name: 'Shop',
    });
    expect(nameOnly.status).toBe(303);
    expect(await t.app.identity.apps.get(appId)).toMatchObject({
      name: 'Shop',
      redirectUris: ['https://shop.example/callback', 'https://shop.example/cb?v=1,2'],
      scopes: [],
    });
    const restore = await post(t, customer, `/console/apps/${appId}`, {
      csrf: customer.csrf,
      scopes: ['', 'gateway'],
    });
    expect(restore.status).toBe(303);
  });

  it('the authorization endpoint accepts a redirect URI added in the console, and no longer a removed one', async () => {
    const added = 'https://shop.example/new-callback';
    const removed = 'https://shop.example/callback';
    expect((await authorize(t, appId, added)).status).toBe(400);
    const saved = await post(
      t,
      customer,
      `/console/apps/${appId}`,
      editForm({ redirect_uris: added }),
    );
    expect(saved.status).toBe(303);

    const refused = await authorize(t, appId, removed);
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('redirect_uri did not match');
    expect(refused.location).toBeNull();

    // The whole flow: sign in, consent, land on the new URI with a code the token endpoint
    // redeems for it.
    const config = await discover(
      Object.assign(t, { issuer: `${t.url}/oidc` }),
      appId,
      clientSecret,
    );
    const p = await pkce();
    const callback = await browserLogin({
      browser: new Browser(),
      config,
      redirectUri: added,
      scope: 'openid gateway',
      email: 'edit@example.com',
      codeChallenge: p.challenge,
      state: p.state,
    });
    expect(callback.origin + callback.pathname).toBe(added);
    const tokens = await oidc.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: p.verifier,
      expectedState: p.state,
    });
    expect(tokens.access_token).toBeTruthy();
  });

  it('refuses cross-site, forged and session-less edits', async () => {
    const before = await appRows(t);
    const path = `/console/apps/${appId}`;
    const hostile = editForm({ redirect_uris: 'https://evil.example/steal' });
    for (const origin of [null, 'https://evil.example', 'null', `${t.url}.evil.example`]) {
      const response = await post(t, customer, path, hostile, { origin });
      expect(response.status, String(origin)).toBe(403);
      expect(response.text).toContain('sent from another site');
    }
    for (const csrf of [undefined, '', 'x'.repeat(43), [customer.csrf, 'x']]) {
      const { csrf: _, ...fields } = hostile;
      const response = await post(
        t,
        customer,
        path,
        csrf === undefined ? fields : { ...fields, csrf },
      );
      expect(response.status, String(csrf)).toBe(403);
      expect(response.text).toContain('could not be verified');
    }
    const anonymous = await post(t, null, path, hostile);
    expect(anonymous.status).toBe(303);
    expect(anonymous.location).toMatch(/^\/console\/login\?/);
    const json = await post(t, customer, path, hostile, {
      contentType: 'application/json',
      body: JSON.stringify(hostile),
    });
    expect(json.status).toBe(403);
    expect(await appRows(t)).toEqual(before);
  });

  it('shows the API’s reason for bad values, keeps what was typed (escaped), and writes nothing', async () => {
    const before = await appRows(t);
    const cases: Array<[Record<string, string | string[]>, RegExp]> = [
      [{ redirect_uris: 'javascript:alert(1)' }, /javascript: scheme is not allowed/],
      [{ redirect_uris: 'data:text/html,<script>alert(1)</script>' }, /data: scheme/],
      [{ redirect_uris: 'http://evil.example/cb' }, /http is only allowed for loopback/],
      [{ redirect_uris: 'https://shop.example/cb#x' }, /fragment/],
      [{ redirect_uris: 'not a uri' }, /not an absolute URL/],
      [{ redirect_uris: '' }, /redirect_uris: expected at least one/],
      [{ redirect_uris: `https://shop.example/${'a'.repeat(2000)}` }, /redirect_uris/],
      [
        {
          redirect_uris: Array.from({ length: 21 }, (_, i) => `https://shop.example/${i}`).join(
            '\n',
          ),
        },
        /redirect_uris/,
      ],
      [{ post_logout_redirect_uris: 'javascript:alert(1)' }, /javascript: scheme/],
      [{ allowed_origins: 'https://shop.example/path' }, /not an origin/],
      [{ allowed_origins: '"><script>alert(1)</script>' }, /not an origin/],
      [{ name: '' }, /name/i],
      [{ name: '   ' }, /name/i],
      [{ name: 'n'.repeat(101) }, /name/i],
      [{ scopes: ['', 'gateway', 'admin'] }, /admin/],
      [{ scopes: ['', 'root'] }, /scopes/],
      [
        { name: '<img src=x onerror=alert(1)>', redirect_uris: 'http://evil.example/cb' },
        /loopback/,
      ],
    ];
    for (const [changes, reason] of cases) {
      const label = JSON.stringify(changes).slice(0, 120);
      const response = await post(t, customer, `/console/apps/${appId}`, editForm(changes));
      expect(response.status, label).toBe(400);
      expect(response.text, label).toContain('role="alert"');
      expect(response.text, label).toMatch(reason);
      // Typed values come back escaped, never as markup.
      expect(response.text, label).not.toContain('<img src=x');
      expect(response.text, label).not.toContain('<script>alert');
    }
    const typed = await post(
      t,
      customer,
      `/console/apps/${appId}`,
      editForm({ name: 'Kept <name>', redirect_uris: 'http://evil.example/cb' }),
    );
    expect(typed.text).toContain('value="Kept &lt;name&gt;"');
    expect(typed.text).toContain('http://evil.example/cb</textarea>');
    // The page still shows the app as saved, not as typed.
    expect(typed.text).toContain('<title>App “Shop” · tollhouse console</title>');

    // Larger than any console form: refused before it reaches the API.
    const huge = await post(
      t,
      customer,
      `/console/apps/${appId}`,
      editForm({ redirect_uris: `https://shop.example/${'a'.repeat(70_000)}` }),
    );
    expect(huge.status).toBe(413);
    expect(huge.text).toContain('The form is too large.');
    expect(await appRows(t)).toEqual(before);
  });

  it("cannot see or edit another account's app, or an app id that is not one", async () => {
    const before = await appRows(t);
    const page = await get(`/console/apps/${otherApp}`);
    expect(page.status).toBe(404);
    expect(page.text).toContain('There is no such app on your account.');
    expect(page.text).not.toContain('Other web');
    expect(page.text).not.toContain('other.example');
    const edit = await post(
      t,
      customer,
      `/console/apps/${otherApp}`,
      editForm({ name: 'Taken', redirect_uris: 'https://evil.example/steal' }),
    );
    expect(edit.status).toBe(404);
    expect(edit.text).toContain('There is no such app on your account.');
    expect(edit.text).not.toContain('Other web');
    for (const id of ['x', 'app_..%2F..%2Fkeys', `${appId}x`, 'app_0000000000000000000000']) {
      expect((await get(`/console/apps/${id}`)).status, id).toBe(404);
      const response = await post(t, customer, `/console/apps/${id}`, editForm());
      expect(response.status, id).toBe(404);
    }
    expect(await appRows(t)).toEqual(before);
    expect((await t.app.identity.apps.get(otherApp)).redirectUris).toEqual([
      'https://other.example/cb',
    ]);
  });
});
