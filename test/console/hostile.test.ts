// The console's POST handlers over real HTTP against hostile and mistaken input: forms from
// another origin, without or with a wrong CSRF token, without a session, with bad values —
// each refused with a page that says why, and nothing written.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import { post, signInHttp, startConsoleApp } from './support.ts';
import type { HttpSession } from './support.ts';
import { accountWithPassword } from '../support/fixtures.ts';

let t: TestApp;
let customer: HttpSession;
let customerId: string;
let operator: HttpSession;

async function keyCount(accountId: string): Promise<number> {
  const rows = await t.app.database.db
    .selectFrom('api_keys')
    .select('id')
    .where('account_id', '=', accountId)
    .execute();
  return rows.length;
}

async function ledgerCount(accountId: string): Promise<number> {
  const balance = await t.app.billing.service.balance(accountId);
  return balance.entries.length;
}

beforeAll(async () => {
  t = await startConsoleApp();
  customerId = (await accountWithPassword(t, 'hostile@example.com')).id;
  await accountWithPassword(t, 'op@example.com', { admin: true });
  customer = await signInHttp(t, 'hostile@example.com');
  operator = await signInHttp(t, 'op@example.com');
});

afterAll(async () => {
  await t?.close();
});

const goodKey = { name: 'ok', kind: 'backend', scopes: 'gateway' };

describe('console forms refuse hostile requests', () => {
  it('creates a key when everything is right (the baseline the refusals are measured against)', async () => {
    const before = await keyCount(customerId);
    const response = await post(t, customer, '/console/keys', { ...goodKey, csrf: customer.csrf });
    expect(response.status).toBe(200);
    expect(response.text).toContain('id="new-secret"');
    expect(await keyCount(customerId)).toBe(before + 1);
  });

  it('refuses a form without Origin, or from another origin, before anything else', async () => {
    const before = await keyCount(customerId);
    for (const origin of [null, 'https://evil.example', `${t.url}.evil.example`, 'null']) {
      const response = await post(
        t,
        customer,
        '/console/keys',
        { ...goodKey, csrf: customer.csrf },
        { origin },
      );
      expect(response.status, String(origin)).toBe(403);
      expect(response.text).toContain('sent from another site');
    }
    expect(await keyCount(customerId)).toBe(before);
  });

  it('refuses a missing, wrong or another session’s CSRF token', async () => {
    const before = await keyCount(customerId);
    for (const csrf of [
      undefined,
      '',
      'x'.repeat(43),
      operator.csrf,
      [customer.csrf, customer.csrf],
    ]) {
      const fields: Record<string, string | string[]> = { ...goodKey };
      if (csrf !== undefined) fields.csrf = csrf;
      const response = await post(t, customer, '/console/keys', fields);
      expect(response.status, JSON.stringify(csrf)).toBe(403);
      expect(response.text).toContain('could not be verified');
    }
    expect(await keyCount(customerId)).toBe(before);
  });

  it('refuses a POST that is not a form (JSON) and an oversized form', async () => {
    const json = await post(
      t,
      customer,
      '/console/keys',
      {},
      {
        contentType: 'application/json',
        body: JSON.stringify({ ...goodKey, csrf: customer.csrf }),
      },
    );
    expect(json.status).toBe(403);
    const huge = await post(t, customer, '/console/keys', {
      ...goodKey,
      csrf: customer.csrf,
      allowed_resources: 'a'.repeat(100_000),
    });
    expect(huge.status).toBe(413);
    expect(huge.text).toContain('too large');
  });

  it('sends a POST without a session to sign-in, and writes nothing', async () => {
    const response = await post(t, null, '/console/keys', goodKey);
    expect(response.status).toBe(303);
    expect(response.location).toBe('/console/login?return_to=%2Fconsole%2Fkeys');
    const forged = await post(
      t,
      { ...customer, cookie: 'A'.repeat(43) },
      '/console/keys/x/revoke',
      {
        csrf: customer.csrf,
      },
    );
    expect(forged.status).toBe(303);
    expect(forged.location).toMatch(/^\/console\/login\?/);
  });

  it('sends a page request without a session to sign-in, keeping where it was going', async () => {
    const response = await fetch(`${t.url}/console/usage?pipeline=llm`, { redirect: 'manual' });
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe(
      `/console/login?return_to=${encodeURIComponent('/console/usage?pipeline=llm')}`,
    );
  });

  it('shows the API’s reason for bad key values, keeps what was typed, and writes nothing', async () => {
    const before = await keyCount(customerId);
    const cases: Array<[Record<string, string | string[]>, RegExp]> = [
      [{ name: '', kind: 'backend' }, /name/i],
      [{ name: 'b', kind: 'browser' }, /origin/i],
      [{ name: 'b', kind: 'browser', allowed_origins: 'not a url' }, /origin/i],
      [{ name: 'k', kind: 'sideways' }, /kind/i],
      [{ name: 'k', kind: 'backend', scopes: ['gateway', 'admin'] }, /admin/i],
      [{ name: 'k', kind: 'backend', allowed_resources: 'has space' }, /resource|ASCII/i],
    ];
    for (const [fields, reason] of cases) {
      const response = await post(t, customer, '/console/keys', { ...fields, csrf: customer.csrf });
      expect(response.status, JSON.stringify(fields)).toBe(400);
      const alert = /<p class="notice error" role="alert">([^<]*)<\/p>/.exec(response.text)?.[1];
      expect(alert, JSON.stringify(fields)).toMatch(reason);
    }
    const withName = await post(t, customer, '/console/keys', {
      name: '<script>alert(1)</script>',
      kind: 'browser',
      csrf: customer.csrf,
    });
    expect(withName.status).toBe(400);
    expect(withName.text).toContain('value="&lt;script&gt;alert(1)&lt;/script&gt;"');
    expect(withName.text).not.toContain('<script>alert(1)');
    expect(await keyCount(customerId)).toBe(before);
  });

  it('refuses a rotation grace period that is not offered, and an unknown key', async () => {
    const rows = await t.app.database.db
      .selectFrom('api_keys')
      .select('id')
      .where('account_id', '=', customerId)
      .execute();
    const id = rows[0]!.id;
    for (const grace of ['abc', '-1', '99999999', '']) {
      const response = await post(t, customer, `/console/keys/${id}/rotate`, {
        grace_seconds: grace,
        csrf: customer.csrf,
      });
      expect(response.status, grace).toBe(400);
    }
    const unknown = await post(t, customer, '/console/keys/key_0000000000000000000000/revoke', {
      csrf: customer.csrf,
    });
    expect(unknown.status).toBe(400);
    expect(await keyCount(customerId)).toBe(rows.length);
  });

  it('refuses operator actions from a customer, and bad credit amounts from an operator', async () => {
    const path = `/console/admin/accounts/${customerId}/credits`;
    const reference = 'r'.repeat(22);
    const asCustomer = await post(t, customer, path, {
      amount: '25',
      kind: 'grant',
      reference,
      csrf: customer.csrf,
    });
    expect(asCustomer.status).toBe(403);
    for (const amount of ['', 'abc', '-5', '0', '1e9', '1.1234567', '99999999999999']) {
      const response = await post(t, operator, path, {
        amount,
        kind: 'grant',
        reference,
        csrf: operator.csrf,
      });
      expect(response.status, amount).toBe(400);
      expect(response.text).toContain('role="alert"');
    }
    const badKind = await post(t, operator, path, {
      amount: '5',
      kind: 'refund',
      reference,
      csrf: operator.csrf,
    });
    expect(badKind.status).toBe(400);
    expect(await ledgerCount(customerId)).toBe(0);

    // The same form sent twice records the credit once (its reference is the idempotency key).
    const first = await post(t, operator, path, {
      amount: '5',
      kind: 'grant',
      reference,
      csrf: operator.csrf,
    });
    const again = await post(t, operator, path, {
      amount: '5',
      kind: 'grant',
      reference,
      csrf: operator.csrf,
    });
    expect([first.status, first.location]).toEqual([
      303,
      `/console/admin/accounts/${customerId}?done=credit`,
    ]);
    expect([again.status, again.location]).toEqual([
      303,
      `/console/admin/accounts/${customerId}?done=duplicate`,
    ]);
    expect(await ledgerCount(customerId)).toBe(1);
  });

  it('keeps the session when sign-out is forged, and ends it when sign-out is real', async () => {
    const forged = await post(
      t,
      customer,
      '/console/logout',
      {},
      { origin: 'https://evil.example' },
    );
    expect(forged.status).toBe(403);
    const still = await fetch(`${t.url}/console`, {
      headers: { cookie: `tollhouse_console=${customer.cookie}` },
      redirect: 'manual',
    });
    expect(still.status).toBe(200);

    const session = await signInHttp(t, 'hostile@example.com');
    const out = await post(t, session, '/console/logout', { csrf: session.csrf });
    expect(out.status).toBe(303);
    expect(out.location).toMatch(/\/oidc\/session\/end\?client_id=tollhouse-console/);
    const after = await fetch(`${t.url}/console`, {
      headers: { cookie: `tollhouse_console=${session.cookie}` },
      redirect: 'manual',
    });
    expect(after.status).toBe(303);
  });
});

describe('console operator forms', () => {
  it('shows the API’s refusal of an unknown plan and of bad app values, writing nothing', async () => {
    const plan = await post(t, operator, `/console/admin/accounts/${customerId}/plan`, {
      plan_id: 'no-such-plan',
      csrf: operator.csrf,
    });
    expect(plan.status).toBe(400);
    expect(plan.text).toContain('role="alert"');
    const subscriptions = await t.app.database.db
      .selectFrom('subscriptions')
      .select('plan_id')
      .where('account_id', '=', customerId)
      .execute();
    expect(subscriptions).toEqual([]);

    const apps = async () => (await t.app.identity.apps.list(null)).items.length;
    const before = await apps();
    const cases: Array<Record<string, string>> = [
      { name: 'a', kind: 'public' },
      { name: 'a', kind: 'web', redirect_uris: 'not a uri' },
      { name: '', kind: 'machine' },
      { name: 'a', kind: 'root' },
    ];
    for (const fields of cases) {
      const response = await post(t, operator, '/console/apps', { ...fields, csrf: operator.csrf });
      expect(response.status, JSON.stringify(fields)).toBe(400);
      expect(response.text).toContain('role="alert"');
    }
    expect(await apps()).toBe(before);
  });

  it('disables and enables an account through PATCH /v1/accounts/{id}, and refuses a bogus status', async () => {
    const status = async () =>
      (
        await t.app.database.db
          .selectFrom('accounts')
          .select('status')
          .where('id', '=', customerId)
          .executeTakeFirstOrThrow()
      ).status;
    const bogus = await post(t, operator, `/console/admin/accounts/${customerId}/status`, {
      status: 'deleted',
      csrf: operator.csrf,
    });
    expect(bogus.status).toBe(400);
    expect(await status()).toBe('active');

    const disabled = await post(t, operator, `/console/admin/accounts/${customerId}/status`, {
      status: 'disabled',
      csrf: operator.csrf,
    });
    expect(disabled.status).toBe(303);
    expect(await status()).toBe('disabled');
    const page = await fetch(`${t.url}/console/admin/accounts/${customerId}`, {
      headers: { cookie: `tollhouse_console=${operator.cookie}` },
    });
    const text = await page.text();
    expect(page.status).toBe(200);
    expect(text).toMatch(/id="account-status">disabled</);
    expect(text).toContain('Enable account');

    const enabled = await post(t, operator, `/console/admin/accounts/${customerId}/status`, {
      status: 'active',
      csrf: operator.csrf,
    });
    expect(enabled.status).toBe(303);
    expect(await status()).toBe('active');
  });

  it('gives customers’ console tokens every API scope but admin, and operators’ admin too', async () => {
    const rows = await t.app.database.db
      .selectFrom('console_sessions')
      .select(['email', 'scopes'])
      .where('email', 'in', ['hostile@example.com', 'op@example.com'])
      .execute();
    const scopes = new Map(rows.map((r) => [r.email, r.scopes.split(' ').sort()]));
    expect(scopes.get('hostile@example.com')).toEqual([
      'billing:read',
      'gateway',
      'signer',
      'usage:read',
    ]);
    expect(scopes.get('op@example.com')).toEqual([
      'admin',
      'billing:read',
      'gateway',
      'signer',
      'usage:read',
    ]);
  });
});

describe('console sign-in and headers', () => {
  it('sets a strict CSP and an HttpOnly, SameSite=Lax session cookie scoped to /console', async () => {
    const page = await fetch(`${t.url}/console`, {
      headers: { cookie: `tollhouse_console=${customer.cookie}` },
    });
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    expect(page.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
    expect(page.headers.get('cache-control')).toBe('no-store');
    const html = await page.text();
    expect(html).not.toMatch(/<script>|<style>| style="| on\w+="/);
    const session = await signInHttp(t, 'hostile@example.com');
    expect(session.jar.cookies.has('tollhouse_console')).toBe(true);
    // Checked on the raw header of a fresh sign-in.
    const start = await fetch(`${t.url}/console/login`, { redirect: 'manual' });
    const loginCookie = start.headers.getSetCookie().join('\n');
    expect(loginCookie).toMatch(
      /tollhouse_console_login=.*path=\/console\/callback.*samesite=lax.*httponly/i,
    );
  });

  it('refuses a callback that this browser did not start, or whose state does not match', async () => {
    const bare = await fetch(`${t.url}/console/callback?code=abc&state=xyz`, {
      redirect: 'manual',
    });
    expect(bare.status).toBe(400);
    const start = await fetch(`${t.url}/console/login`, { redirect: 'manual' });
    const cookie = start.headers.getSetCookie()[0]!.split(';')[0]!;
    const mismatch = await fetch(`${t.url}/console/callback?code=abc&state=not-the-state`, {
      headers: { cookie },
      redirect: 'manual',
    });
    expect(mismatch.status).toBe(400);
    expect(await mismatch.text()).toContain('does not match');
    const state = new URL(start.headers.get('location')!).searchParams.get('state')!;
    const badCode = await fetch(`${t.url}/console/callback?code=forged&state=${state}`, {
      headers: { cookie },
      redirect: 'manual',
    });
    expect(badCode.status).toBe(400);
    expect(await badCode.text()).toContain('could not be completed');
  });

  it('asks for PKCE S256 and only the console’s own redirect URI', async () => {
    const start = await fetch(`${t.url}/console/login?return_to=//evil.example`, {
      redirect: 'manual',
    });
    const url = new URL(start.headers.get('location')!);
    expect(url.origin + url.pathname).toBe(`${t.url}/oidc/auth`);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('redirect_uri')).toBe(`${t.url}/console/callback`);
    expect(url.searchParams.get('client_id')).toBe('tollhouse-console');
  });

  it('refuses hostile signer actions: no CSRF, a customer, bad operations, amounts and tokens', async () => {
    const journal = async () =>
      (await t.app.database.db.selectFrom('funding_transactions').select('id').execute()).length;
    const before = await journal();
    const fund = { operation: 'fund', deposit_eth: '0.1' };
    const noCsrf = await post(t, operator, '/console/admin/signer/preview', fund);
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.text).toContain('could not be verified');
    const asCustomer = await post(t, customer, '/console/admin/signer/preview', {
      ...fund,
      csrf: customer.csrf,
    });
    expect(asCustomer.status).toBe(403);
    for (const fields of [
      { operation: 'launch' },
      { operation: '' },
      { operation: 'fund', deposit_eth: '1e18' },
      { operation: 'fund', deposit_eth: '-1' },
      { operation: 'fund', deposit_eth: '0.1234567890123456789' },
      { operation: 'fund', deposit_eth: '<script>alert(1)</script>' },
    ] as Array<Record<string, string>>) {
      const response = await post(t, operator, '/console/admin/signer/preview', {
        ...fields,
        csrf: operator.csrf,
      });
      expect(response.status, JSON.stringify(fields)).toBe(400);
      expect(response.text).not.toContain('<script>alert(1)</script>');
    }
    // Well formed, but this app's signer is off: the API's 503 is shown, nothing is sent.
    const off = await post(t, operator, '/console/admin/signer/preview', {
      ...fund,
      csrf: operator.csrf,
    });
    expect(off.status).toBe(503);
    expect(off.text).toContain('The payment signer is disabled');
    for (const token of ['', 'sgc_x', `sgc_${'a'.repeat(43)}`]) {
      const response = await post(t, operator, '/console/admin/signer/confirm', {
        operation: 'fund',
        confirmation_token: token,
        csrf: operator.csrf,
      });
      expect([400, 409, 503], token).toContain(response.status);
    }
    expect(await journal()).toBe(before);
  });
});
