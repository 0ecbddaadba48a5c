// "Your account" in the console over real HTTP (issue #18 item 7): the page lists the
// console's own sign-in, and its forms go through /v1/account/… — a wrong current password and
// a forged form are refused with a page that says why and change nothing; the right password
// changes it or deletes the account.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import { post, signInHttp, startConsoleApp } from './support.ts';
import { PASSWORD, accountWithPassword } from '../support/fixtures.ts';

let t: TestApp;

beforeAll(async () => {
  t = await startConsoleApp();
});
afterAll(async () => {
  await t?.close();
});

async function get(cookie: string, path: string) {
  const response = await fetch(`${t.url}${path}`, {
    headers: { cookie: `tollhouse_console=${cookie}` },
    redirect: 'manual',
  });
  return { status: response.status, text: await response.text() };
}

describe('console: your account', () => {
  it('lists the console sign-in and refuses a wrong password or a forged form', async () => {
    const account = await accountWithPassword(t, 'holder@example.com');
    const session = await signInHttp(t, 'holder@example.com');
    const page = await get(session.cookie, '/console/account');
    expect(page.status).toBe(200);
    expect(page.text).toContain('tollhouse console');
    expect(page.text).toContain('action="/console/account/password"');

    const wrong = await post(t, session, '/console/account/password', {
      csrf: session.csrf,
      current_password: 'not my password',
      new_password: 'a brand new passphrase',
      new_password_confirm: 'a brand new passphrase',
    });
    expect(wrong.status).toBe(400);
    expect(wrong.text).toContain('not the password of this account');
    const forged = await post(t, session, '/console/account/delete', {
      csrf: 'forged',
      confirm: 'delete',
      current_password: PASSWORD,
    });
    expect(forged.status).toBe(403);
    const crossSite = await post(
      t,
      session,
      '/console/account/delete',
      { csrf: session.csrf, confirm: 'delete', current_password: PASSWORD },
      { origin: 'https://evil.example' },
    );
    expect(crossSite.status).toBe(403);
    const unconfirmed = await post(t, session, '/console/account/delete', {
      csrf: session.csrf,
      confirm: 'no',
      current_password: PASSWORD,
    });
    expect(unconfirmed.status).toBe(400);
    expect((await t.app.identity.accounts.get(account.id))!.status).toBe('active');
    expect(await t.app.identity.accounts.authenticate('holder@example.com', PASSWORD)).not.toBe(
      null,
    );
  });

  it('ends a sign-in from its row, and says when e-mail is not configured', async () => {
    await accountWithPassword(t, 'ender@example.com');
    const session = await signInHttp(t, 'ender@example.com');
    const page = await get(session.cookie, '/console/account');
    const actions = [
      ...page.text.matchAll(/action="\/console\/account\/sessions\/([^/"]+)\/end"/g),
    ];
    expect(actions.length).toBeGreaterThan(0);
    const ended = await post(t, session, `/console/account/sessions/${actions[0]![1]}/end`, {
      csrf: session.csrf,
    });
    expect(ended.status).toBe(303);
    expect(ended.location).toBe('/console/account?done=ended');
    const bad = await post(t, session, '/console/account/sessions/not-an-id/end', {
      csrf: session.csrf,
    });
    expect(bad.status).toBe(400);

    // No SMTP_URL in this app: the form shows the API's reason, and the address stays.
    const moved = await post(t, session, '/console/account/email', {
      csrf: session.csrf,
      email: 'elsewhere@example.com',
      current_password: PASSWORD,
    });
    expect(moved.status).toBe(400);
    expect(moved.text).toContain('E-mail is not configured');
    expect(await t.app.identity.accounts.findByEmail('ender@example.com')).not.toBeNull();
  });

  it('changes the password, then deletes the account', async () => {
    const account = await accountWithPassword(t, 'leaver@example.com');
    const session = await signInHttp(t, 'leaver@example.com');
    const changed = await post(t, session, '/console/account/password', {
      csrf: session.csrf,
      current_password: PASSWORD,
      new_password: 'a brand new passphrase',
      new_password_confirm: 'a brand new passphrase',
    });
    expect(changed.status).toBe(303);
    expect(changed.location).toBe('/console/account?done=password');
    expect(
      await t.app.identity.accounts.authenticate('leaver@example.com', 'a brand new passphrase'),
    ).not.toBeNull();

    // The console's access token outlives its ended refresh token: the session still acts.
    const deleted = await post(t, session, '/console/account/delete', {
      csrf: session.csrf,
      confirm: 'delete',
      current_password: 'a brand new passphrase',
    });
    expect(deleted.status).toBe(303);
    expect(deleted.location).toBe('/console/signed-out');
    const row = (await t.app.identity.accounts.get(account.id))!;
    expect(row.status).toBe('disabled');
    expect(row.email).not.toBe('leaver@example.com');
  });

  it('tells an operator session to use another way', async () => {
    await accountWithPassword(t, 'op@example.com', { admin: true });
    const session = await signInHttp(t, 'op@example.com');
    const page = await get(session.cookie, '/console/account');
    expect(page.status).toBe(403);
    expect(page.text).toContain('An operator session cannot change its own account here');
  });
});
