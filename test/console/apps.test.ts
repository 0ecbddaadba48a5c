// The customer apps page's POST handlers over real HTTP: a customer registers, rotates and
// disables its own apps through /v1/apps; forged, cross-site, malformed and other-account
// requests are refused with a page that says why, and nothing is written.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import { appRows, otherAccountApp, post, signInHttp, startConsoleApp } from './support.ts';
import type { HttpSession } from './support.ts';
import { accountWithPassword } from '../support/fixtures.ts';

let t: TestApp;
let customer: HttpSession;
let customerId: string;
let otherApp: string;

beforeAll(async () => {
  t = await startConsoleApp();
  customerId = (await accountWithPassword(t, 'apps@example.com')).id;
  const other = await accountWithPassword(t, 'other@example.com');
  customer = await signInHttp(t, 'apps@example.com');
  otherApp = await otherAccountApp(t, other.id);
});

afterAll(async () => {
  await t?.close();
});

const goodApp = {
  name: 'Shop',
  kind: 'web',
  redirect_uris: 'https://shop.example/callback\r\nhttps://shop.example/cb2',
  allowed_origins: 'https://shop.example',
};

describe('console apps page for a customer', () => {
  it('registers, rotates and disables its own app, showing each secret once', async () => {
    const created = await post(t, customer, '/console/apps', { ...goodApp, csrf: customer.csrf });
    expect(created.status).toBe(200);
    const secret = /id="new-secret">([^<]+)</.exec(created.text)?.[1];
    expect(secret).toMatch(/^thcs_/);
    const [app] = (await t.app.identity.apps.list(customerId)).items;
    expect(app).toMatchObject({
      name: 'Shop',
      kind: 'web',
      redirectUris: ['https://shop.example/callback', 'https://shop.example/cb2'],
      allowedOrigins: ['https://shop.example'],
    });

    // Shown once: the list page does not carry it.
    const page = await fetch(`${t.url}/console/apps`, {
      headers: { cookie: `tollhouse_console=${customer.cookie}` },
    });
    const listed = await page.text();
    expect(listed).toContain(app!.clientId);
    expect(listed).not.toContain(secret);
    // Another account's app is not listed.
    expect(listed).not.toContain(otherApp);

    const rotated = await post(t, customer, `/console/apps/${app!.id}/rotate-secret`, {
      grace_seconds: '3600',
      csrf: customer.csrf,
    });
    expect(rotated.status).toBe(200);
    const second = /id="new-secret">([^<]+)</.exec(rotated.text)?.[1];
    expect(second).toMatch(/^thcs_/);
    expect(second).not.toBe(secret);
    expect(rotated.text).toContain('Old secret works until');

    const disabled = await post(t, customer, `/console/apps/${app!.id}/status`, {
      status: 'disabled',
      csrf: customer.csrf,
    });
    expect(disabled.status).toBe(303);
    expect(disabled.location).toBe('/console/apps?done=disabled');
    expect((await t.app.identity.apps.get(app!.id)).status).toBe('disabled');
  });

  it('refuses cross-site, forged and session-less posts to every apps form', async () => {
    const before = await appRows(t);
    const [own] = (await t.app.identity.apps.list(customerId)).items;
    const forms: Array<[string, Record<string, string>]> = [
      ['/console/apps', goodApp],
      [`/console/apps/${own!.id}/rotate-secret`, { grace_seconds: '0' }],
      [`/console/apps/${own!.id}/status`, { status: 'active' }],
    ];
    for (const [path, fields] of forms) {
      for (const origin of [null, 'https://evil.example']) {
        const response = await post(
          t,
          customer,
          path,
          { ...fields, csrf: customer.csrf },
          { origin },
        );
        expect(response.status, `${path} ${origin}`).toBe(403);
      }
      for (const csrf of [undefined, '', 'x'.repeat(43)]) {
        const response = await post(
          t,
          customer,
          path,
          csrf === undefined ? fields : { ...fields, csrf },
        );
        expect(response.status, `${path} ${csrf}`).toBe(403);
        expect(response.text).toContain('could not be verified');
      }
      const anonymous = await post(t, null, path, fields);
      expect(anonymous.status).toBe(303);
      expect(anonymous.location).toMatch(/^\/console\/login\?/);
    }
    expect(await appRows(t)).toEqual(before);
  });

  it("cannot rotate or disable another account's app: the API's 404 becomes a page with the reason", async () => {
    const before = await appRows(t);
    const rotate = await post(t, customer, `/console/apps/${otherApp}/rotate-secret`, {
      grace_seconds: '0',
      csrf: customer.csrf,
    });
    expect(rotate.status).toBe(400);
    expect(rotate.text).toContain('role="alert"');
    expect(rotate.text).toContain(`No app ${otherApp}`);
    expect(rotate.text).not.toContain('id="new-secret"');
    const disable = await post(t, customer, `/console/apps/${otherApp}/status`, {
      status: 'disabled',
      csrf: customer.csrf,
    });
    expect(disable.status).toBe(400);
    expect(disable.text).toContain(`No app ${otherApp}`);
    expect(await appRows(t)).toEqual(before);
  });

  it('shows the reason for bad values, keeps what was typed, and writes nothing', async () => {
    const before = await appRows(t);
    const [own] = (await t.app.identity.apps.list(customerId)).items;
    const create: Array<[Record<string, string | string[]>, RegExp]> = [
      [{ name: '', kind: 'machine' }, /name/i],
      [{ name: 'a', kind: 'root' }, /kind/i],
      [{ name: 'a', kind: 'web', redirect_uris: 'not a uri' }, /redirect_uris/],
      [{ name: 'a', kind: 'web', redirect_uris: 'javascript:alert(1)' }, /redirect_uris/],
      [{ name: 'a', kind: 'web', redirect_uris: 'http://evil.example/cb' }, /https/],
      [{ name: 'a', kind: 'public', redirect_uris: 'https://a.example/cb#x' }, /fragment/],
      [{ name: 'a', kind: 'machine', allowed_origins: 'https://a.example/path' }, /origin/],
      [{ name: '<img src=x onerror=alert(1)>', kind: 'web' }, /redirect_uris/],
      [{ name: 'n'.repeat(101), kind: 'machine' }, /name/i],
    ];
    for (const [fields, reason] of create) {
      const response = await post(t, customer, '/console/apps', { ...fields, csrf: customer.csrf });
      expect(response.status, JSON.stringify(fields)).toBe(400);
      expect(response.text).toContain('role="alert"');
      expect(response.text, JSON.stringify(fields)).toMatch(reason);
      // Typed values come back escaped, never as markup.
      expect(response.text).not.toContain('<img src=x');
    }
    const typed = await post(t, customer, '/console/apps', {
      name: 'Kept name',
      kind: 'web',
      redirect_uris: 'http://evil.example/cb',
      csrf: customer.csrf,
    });
    expect(typed.text).toContain('value="Kept name"');
    expect(typed.text).toContain('http://evil.example/cb</textarea>');

    for (const grace of ['', '-1', '60', '99999999', 'soon']) {
      const response = await post(t, customer, `/console/apps/${own!.id}/rotate-secret`, {
        grace_seconds: grace,
        csrf: customer.csrf,
      });
      expect(response.status, grace).toBe(400);
      expect(response.text).toContain('Choose how long the old secret keeps working');
    }
    for (const id of ['x', 'app_..%2F..%2Fkeys', `${own!.id}x`]) {
      const rotate = await post(t, customer, `/console/apps/${id}/rotate-secret`, {
        grace_seconds: '0',
        csrf: customer.csrf,
      });
      expect(rotate.status, id).toBe(400);
      const status = await post(t, customer, `/console/apps/${id}/status`, {
        status: 'disabled',
        csrf: customer.csrf,
      });
      expect(status.status, id).toBe(400);
    }
    const bogus = await post(t, customer, `/console/apps/${own!.id}/status`, {
      status: 'deleted',
      csrf: customer.csrf,
    });
    expect(bogus.status).toBe(400);
    expect(await appRows(t)).toEqual(before);
  });

  it('refuses to rotate a public app (it has no secret)', async () => {
    const created = await post(t, customer, '/console/apps', {
      name: 'SPA',
      kind: 'public',
      redirect_uris: 'http://localhost:5173/cb',
      csrf: customer.csrf,
    });
    expect(created.status).toBe(200);
    expect(created.text).toContain('This is a public app');
    const spa = (await t.app.identity.apps.list(customerId)).items.find((a) => a.name === 'SPA')!;
    const before = await appRows(t);
    const rotate = await post(t, customer, `/console/apps/${spa.id}/rotate-secret`, {
      grace_seconds: '0',
      csrf: customer.csrf,
    });
    expect(rotate.status).toBe(400);
    expect(rotate.text).toContain('public app has no secret');
    expect(await appRows(t)).toEqual(before);
  });
});
