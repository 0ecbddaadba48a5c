// "Get started" in the console over real HTTP (issue #18 item 5): where a customer without a key
// lands after signing in, each step's state as /v1 reports it, the inline first key (shown once,
// filled into the curl and go-livepeer's flags, and working against a fake go-livepeer through
// the front door), the resend of the confirmation link through a real SMTP server, dismissal,
// and the page leaving the menu once every step is done. Hostile input: forged and cross-site
// forms, a NUL in the key name, another account's id smuggled into the form.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import { eventually } from '../support/eventually.ts';
import { startFakeGateway } from '../support/fake-gateway.ts';
import type { FakeGateway } from '../support/fake-gateway.ts';
import { PASSWORD, accountWithPassword } from '../support/fixtures.ts';
import { linkIn, startSmtp } from '../identity/smtp.ts';
import type { TestSmtp } from '../identity/smtp.ts';
import { post, signInHttp, startConsoleApp } from './support.ts';

let t: TestApp;
let smtp: TestSmtp;
let gateway: FakeGateway;

beforeAll(async () => {
  smtp = await startSmtp();
  gateway = await startFakeGateway();
  t = await startConsoleApp({
    SIGNUP_POLICY: 'open',
    SMTP_URL: smtp.url,
    MAIL_FROM: 'Example API <no-reply@example.com>',
    GATEWAY_URL: gateway.url,
    GATEWAY_PRICES: JSON.stringify({
      'text-to-image': { price_per_unit: '1000', pixels_per_unit: '1' },
    }),
  });
});
afterAll(async () => {
  await t?.close();
  await gateway?.close();
  await smtp?.close();
});

async function get(cookie: string, path: string) {
  const response = await fetch(`${t.url}${path}`, {
    headers: { cookie: `tollhouse_console=${cookie}` },
    redirect: 'manual',
  });
  return { status: response.status, text: await response.text() };
}

/** The state badge of the step whose heading has id `id`. */
function stateOf(html: string, id: string): string | undefined {
  const match = new RegExp(
    `<h2 id="${id}">[\\s\\S]*?<span class="badge \\w+">(Done|To do)</span>`,
  ).exec(html);
  return match?.[1];
}

/** Where the console sends `email` right after signing in. */
async function landingOf(email: string): Promise<string> {
  return (await signInHttp(t, email)).landing;
}

async function keysOf(accountId: string) {
  return (
    await t.app.keys.service.list(
      { actor: 'test', accountId, admin: false, scopes: [], browser: false, requestId: null },
      {},
    )
  ).items;
}

describe('console: get started', () => {
  it('takes a signed-up customer from an unconfirmed address to a first request', async () => {
    const email = `starter-${Date.now()}@example.com`;
    await t.app.identity.onboarding.signUp({ email, password: PASSWORD, name: null });
    const signUpMail = await smtp.next(email, /confirm/i);
    expect(await landingOf(email)).toBe('/console/get-started');

    const session = await signInHttp(t, email);
    let page = await get(session.cookie, '/console/get-started');
    expect(page.status).toBe(200);
    expect(stateOf(page.text, 'gs-verify')).toBe('To do');
    expect(stateOf(page.text, 'gs-key')).toBe('To do');
    expect(page.text).toContain('Confirm your address first.');
    // The menu offers the page while steps are left.
    expect(page.text).toContain('href="/console/get-started"');

    // Unconfirmed: the API refuses the key, and the page says why.
    const early = await post(t, session, '/console/get-started/key', {
      csrf: session.csrf,
      name: 'too early',
    });
    expect(early.status).toBe(400);
    expect(early.text).toMatch(/Confirm the e-mail address/);

    // Resend: forged and cross-site forms send nothing; the real one sends a new link.
    const forged = await post(t, session, '/console/get-started/verification', { csrf: 'x' });
    expect(forged.status).toBe(403);
    const crossSite = await post(
      t,
      session,
      '/console/get-started/verification',
      { csrf: session.csrf },
      { origin: 'https://evil.example' },
    );
    expect(crossSite.status).toBe(403);
    expect(smtp.waiting(email)).toEqual([]);
    const resent = await post(t, session, '/console/get-started/verification', {
      csrf: session.csrf,
    });
    expect(resent.status).toBe(303);
    expect(resent.location).toBe('/console/get-started?done=verification');
    const again = await smtp.next(email, /confirm/i);
    // The newer link works; the one from sign-up stopped working.
    const oldToken = new URL(
      linkIn(signUpMail, `${t.url}/account/verify-email?token=`),
    ).searchParams.get('token')!;
    const newToken = new URL(
      linkIn(again, `${t.url}/account/verify-email?token=`),
    ).searchParams.get('token')!;
    await expect(t.app.identity.onboarding.verifyEmail(oldToken)).rejects.toThrow(/not valid/);
    await t.app.identity.onboarding.verifyEmail(newToken);

    page = await get(session.cookie, '/console/get-started');
    expect(stateOf(page.text, 'gs-verify')).toBe('Done');
    // Confirmed: asking again is a clear refusal, not another e-mail.
    const needless = await post(t, session, '/console/get-started/verification', {
      csrf: session.csrf,
    });
    expect(needless.status).toBe(409);
    expect(needless.text).toContain('confirmed already');

    // Hostile key names are refused before anything is written.
    const nul = await post(t, session, '/console/get-started/key', {
      csrf: session.csrf,
      name: 'bad\u0000name',
    });
    expect(nul.status).toBe(400);
    const long = await post(t, session, '/console/get-started/key', {
      csrf: session.csrf,
      name: 'x'.repeat(500),
    });
    expect(long.status).toBe(400);
    const account = await t.app.identity.accounts.find(email);
    expect(await keysOf(account.id)).toEqual([]);

    // Another account's id in the form changes nothing: the key is the session's account's.
    const other = await accountWithPassword(t, `other-${Date.now()}@example.com`);
    const created = await post(t, session, '/console/get-started/key', {
      csrf: session.csrf,
      name: 'first',
      account_id: other.id,
    });
    expect(created.status).toBe(200);
    expect(await keysOf(other.id)).toEqual([]);
    const keys = await keysOf(account.id);
    expect(keys.map((k) => [k.name, [...k.scopes].sort()])).toEqual([
      ['first', ['gateway', 'signer', 'usage:read']],
    ]);
    const secret = /<code id="new-secret">([^<]+)<\/code>/.exec(created.text)![1]!;
    expect(secret).toMatch(/^th_sk_/);
    const curl = /<code id="gs-curl">([^<]+)<\/code>/.exec(created.text)![1]!;
    expect(curl).toContain(`curl ${t.url}/text-to-image`);
    expect(curl).toContain(`Authorization: Bearer ${secret}`);
    const flags = /<code id="gs-flags">([^<]+)<\/code>/.exec(created.text)![1]!;
    expect(flags).toContain(`-remoteSignerUrl=${t.url} `);
    expect(flags).toContain(`-remoteSignerHeaders &quot;Authorization:Bearer ${secret}&quot;`);
    expect(stateOf(created.text, 'gs-key')).toBe('Done');
    expect(stateOf(created.text, 'gs-signer')).toBe('Done');
    expect(stateOf(created.text, 'gs-request')).toBe('To do');

    // The curl, as the page wrote it, goes through the front door to go-livepeer.
    const response = await fetch(`${t.url}/text-to-image`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'a cat in a tollbooth', width: 512, height: 512 }),
    });
    expect(response.status).toBe(200);
    await response.text();
    await eventually(async () => {
      const now = await get(session.cookie, '/console/get-started');
      return stateOf(now.text, 'gs-request') === 'Done';
    });
    // Once shown, the secret is gone: the commands carry a placeholder.
    page = await get(session.cookie, '/console/get-started');
    expect(page.text).not.toContain(secret);
    expect(page.text).toContain('Bearer $TOLLHOUSE_API_KEY');

    // With a key the console opens on the overview.
    expect(await landingOf(email)).toBe('/console');

    // The last step: an app. Then the page is done and leaves the menu.
    await t.app.identity.apps.create(
      { name: 'Starter app', kind: 'machine', ownerAccountId: account.id, scopes: ['gateway'] },
      { id: 'test' },
    );
    page = await get(session.cookie, '/console/get-started');
    expect(stateOf(page.text, 'gs-app')).toBe('Done');
    expect(page.text).toContain('Every step is done');
    const overview = await get(session.cookie, '/console');
    expect(overview.status).toBe(200);
    expect(overview.text).not.toContain('href="/console/get-started"');
  });

  it('can be dismissed: the console then opens on the overview, and the menu keeps the link', async () => {
    const email = `dismisser-${Date.now()}@example.com`;
    await accountWithPassword(t, email);
    expect(await landingOf(email)).toBe('/console/get-started');
    const session = await signInHttp(t, email);
    const forged = await post(t, session, '/console/get-started/dismiss', { csrf: 'nope' });
    expect(forged.status).toBe(403);
    expect(await landingOf(email)).toBe('/console/get-started');
    const dismissed = await post(t, session, '/console/get-started/dismiss', {
      csrf: session.csrf,
    });
    expect(dismissed.status).toBe(303);
    expect(dismissed.location).toBe('/console');
    expect(await landingOf(email)).toBe('/console');
    const overview = await get(session.cookie, '/console');
    expect(overview.text).toContain('href="/console/get-started"');
    const page = await get(session.cookie, '/console/get-started');
    expect(page.status).toBe(200);
    // An operator-made account starts confirmed.
    expect(stateOf(page.text, 'gs-verify')).toBe('Done');
  });

  it('leaves operators where they were going, and needs a session', async () => {
    const email = `operator-${Date.now()}@example.com`;
    await accountWithPassword(t, email, { admin: true });
    expect(await landingOf(email)).toBe('/console');
    const anonymous = await fetch(`${t.url}/console/get-started`, { redirect: 'manual' });
    expect(anonymous.status).toBe(303);
    const anonymousPost = await post(t, null, '/console/get-started/key', { name: 'x' });
    expect(anonymousPost.status).toBe(303);
  });
});
