// First run (issue #18 item 6): a server with no operator logs a one-time setup link; the test
// reads it from the app's own log, follows it over real HTTP, creates the first operator and
// signs in to the console with it. Then the link is attacked: used, wrong, expired (the clock
// moves), after an operator exists (also one made by the CLI), without CSRF, with mismatched
// passwords, with NUL in a field, and two submissions at once must make exactly one operator.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { SETUP_TTL_MS, identityCommands } from '../../src/identity/index.ts';
import { createLogger } from '../../src/platform/log.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { PASSWORD } from '../support/fixtures.ts';
import { freePort } from '../support/process.ts';
import { signInHttp } from '../console/support.ts';
import { Browser, parseForm } from './support.ts';

let running: TestApp[] = [];
afterEach(async () => {
  await Promise.all(running.map((t) => t.close()));
  running = [];
});

/** A real app on a fresh database (no operator) whose log lines the test can read. */
async function start(): Promise<{
  t: TestApp;
  link: string;
  lines: Array<Record<string, unknown>>;
}> {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line !== '') lines.push(JSON.parse(line));
      done();
    },
  });
  const port = await freePort();
  const t = await startTestApp({
    port,
    env: { PUBLIC_URL: `http://127.0.0.1:${port}`, SIGNUP_ATTEMPTS_PER_IP_PER_HOUR: '1000' },
    log: createLogger({ level: 'info', destination }),
  });
  running.push(t);
  const logged = lines.find((l) => typeof l.setup_url === 'string');
  if (logged === undefined) throw new Error(`no setup link in the log: ${JSON.stringify(lines)}`);
  return { t, link: logged.setup_url as string, lines };
}

async function operators(t: TestApp): Promise<number> {
  const rows = await t.app.database.db
    .selectFrom('accounts')
    .select('id')
    .where('is_admin', '=', true)
    .execute();
  return rows.length;
}

/** Opens the setup link; returns the browser, the page and its form's hidden fields. */
async function openSetup(link: string, browser = new Browser()) {
  const response = await browser.request(link);
  const html = await response.text();
  return { browser, status: response.status, html, response };
}

async function submit(
  browser: Browser,
  url: string,
  fields: Record<string, string>,
): Promise<{ status: number; html: string }> {
  const response = await browser.request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields),
  });
  return { status: response.status, html: await response.text() };
}

function fields(email: string, extra: Record<string, string> = {}) {
  return {
    email,
    name: 'First Operator',
    password: PASSWORD,
    password_confirm: PASSWORD,
    ...extra,
  };
}

describe('first run', () => {
  it('logs a one-time setup link that creates the first operator, who signs in to the console', async () => {
    const { t, link, lines } = await start();
    expect(link).toMatch(new RegExp(`^${t.url}/setup\\?token=thsu_[0-9A-Za-z]{43}$`));
    expect(lines.find((l) => l.setup_url === link)?.msg).toMatch(/no operator yet/);

    // The console's sign-in page says where to look, without the link.
    const jar = new Browser();
    const signInPage = await jar.follow(`${t.url}/console/login`, `${t.url}/console/callback`);
    const signInHtml = await signInPage.response.text();
    expect(signInHtml).toContain('No operator yet: open the setup link printed in the server log');
    expect(signInHtml).not.toContain('thsu_');

    const page = await openSetup(link);
    expect(page.status).toBe(200);
    expect(page.response.headers.get('cache-control')).toBe('no-store');
    expect(page.response.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(page.html).toContain('Create the first operator');
    const form = parseForm(page.html, '/setup');
    const done = await submit(page.browser, `${t.url}${form.action}`, {
      ...form.hidden,
      ...fields('root@example.com'),
    });
    expect(done.status, done.html).toBe(200);
    expect(done.html).toContain('Operator created');
    expect(done.html).toContain('href="/console"');
    expect(await operators(t)).toBe(1);
    const account = await t.app.identity.accounts.findByEmail('root@example.com');
    expect(account).toMatchObject({ isAdmin: true, emailVerified: true, name: 'First Operator' });

    // The operator signs in to the console; the note is gone.
    const session = await signInHttp(t, 'root@example.com');
    const accounts = await session.jar.request(`${t.url}/console/admin/accounts`);
    expect(accounts.status).toBe(200);
    expect(await accounts.text()).toContain('root@example.com');
    const again = await new Browser().follow(`${t.url}/console/login`, `${t.url}/console/callback`);
    expect(await again.response.text()).not.toContain('No operator yet');

    // Used: the same link, its form replayed, and a fresh GET are all refused alike, and no
    // new link is minted while an operator exists.
    const reopened = await openSetup(link);
    expect(reopened.status).toBe(404);
    const replay = await submit(page.browser, `${t.url}/setup`, {
      ...form.hidden,
      ...fields('second@example.com'),
    });
    expect(replay.status).toBe(404);
    expect(replay.html).toBe(reopened.html);
    expect(await operators(t)).toBe(1);
    expect(await t.app.identity.firstRun.mint()).toBeNull();
    expect(t.app.identity.firstRun.link).toBeNull();
  });

  it('refuses a wrong, malformed, expired or superseded token with one identical page', async () => {
    const { t, link } = await start();
    const wrong = link.replace(/thsu_.{4}/, 'thsu_AAAA');
    const refusals = await Promise.all(
      [wrong, `${t.url}/setup`, `${t.url}/setup?token=x`].map((url) => openSetup(url)),
    );
    for (const refusal of refusals) {
      expect(refusal.status).toBe(404);
      expect(refusal.response.headers.get('cache-control')).toBe('no-store');
      expect(refusal.html).toBe(refusals[0]!.html);
    }
    // NUL in the query: refused by the string rule before the page runs.
    expect((await openSetup(`${t.url}/setup?token=thsu_%00`)).status).toBe(400);
    // A form posted with a wrong token: the same refusal, no operator.
    const page = await openSetup(link);
    const form = parseForm(page.html, '/setup');
    const posted = await submit(page.browser, `${t.url}/setup`, {
      ...form.hidden,
      token: wrong.split('token=')[1]!,
      ...fields('wrong@example.com'),
    });
    expect(posted.status).toBe(404);
    expect(posted.html).toBe(refusals[0]!.html);

    // Expired: the clock moves past 24 hours; the form already open is refused too.
    t.clock.advance(SETUP_TTL_MS + 1000);
    expect((await openSetup(link)).status).toBe(404);
    const late = await submit(page.browser, `${t.url}/setup`, {
      ...form.hidden,
      ...fields('late@example.com'),
    });
    expect(late.status).toBe(404);
    expect(late.html).toBe(refusals[0]!.html);
    expect(await operators(t)).toBe(0);

    // A restart mints a new link (what `serve` does at start); the old one stays dead.
    const fresh = await t.app.identity.firstRun.mint();
    expect(fresh).not.toBeNull();
    expect(fresh).not.toBe(link);
    expect((await openSetup(fresh!)).status).toBe(200);
    await t.app.identity.firstRun.mint();
    expect((await openSetup(fresh!)).status).toBe(404);
  });

  it('answers 404 once an operator exists, also one the CLI created', async () => {
    const { t, link } = await start();
    const page = await openSetup(link);
    expect(page.status).toBe(200);
    const form = parseForm(page.html, '/setup');

    const dir = mkdtempSync(join(tmpdir(), 'first-run-'));
    writeFileSync(join(dir, 'password'), `${PASSWORD}\n`);
    const out: string[] = [];
    const code = await identityCommands.accounts!.run(
      ['create', '--email', 'cli@example.com', '--password-file', join(dir, 'password'), '--admin'],
      {
        io: {
          out: (text) => out.push(text),
          err: (text) => out.push(text),
          stdout: process.stdout,
          stdin: process.stdin,
        },
        open: () => Promise.resolve(t.app.identity),
      },
    );
    expect(code, out.join('')).toBe(0);

    expect((await openSetup(link)).status).toBe(404);
    const posted = await submit(page.browser, `${t.url}/setup`, {
      ...form.hidden,
      ...fields('late@example.com'),
    });
    expect(posted.status).toBe(404);
    expect(await operators(t)).toBe(1);
    expect(await t.app.identity.accounts.findByEmail('late@example.com')).toBeNull();
  });

  it('refuses a form without CSRF, with mismatched passwords, bad fields or NUL', async () => {
    const { t, link } = await start();
    const page = await openSetup(link);
    const form = parseForm(page.html, '/setup');
    const url = `${t.url}/setup`;

    // No CSRF field; then a CSRF field without its cookie.
    const { csrf: _csrf, ...noCsrf } = form.hidden;
    const missing = await submit(page.browser, url, { ...noCsrf, ...fields('a@example.com') });
    expect(missing.status).toBe(403);
    const stranger = await submit(new Browser(), url, {
      ...form.hidden,
      ...fields('a@example.com'),
    });
    expect(stranger.status).toBe(403);

    const mismatch = await submit(page.browser, url, {
      ...form.hidden,
      ...fields('a@example.com', { password_confirm: 'something else entirely' }),
    });
    expect(mismatch.status).toBe(400);
    expect(mismatch.html).toContain('The two passwords are not the same.');
    expect(mismatch.html).toContain('value="a@example.com"');

    const short = await submit(page.browser, url, {
      ...form.hidden,
      ...fields('a@example.com', { password: 'short', password_confirm: 'short' }),
    });
    expect(short.status).toBe(400);
    const badEmail = await submit(page.browser, url, { ...form.hidden, ...fields('not-an-email') });
    expect(badEmail.status).toBe(400);

    for (const field of ['email', 'name', 'password']) {
      const nul = await submit(page.browser, url, {
        ...form.hidden,
        ...fields('a@example.com', { [field]: 'x\u0000y' }),
      });
      expect(nul.status, field).toBe(400);
      expect(JSON.parse(nul.html)).toMatchObject({ error: 'InvalidRequest' });
    }
    expect(await operators(t)).toBe(0);
    // None of those used up the link.
    expect((await openSetup(link)).status).toBe(200);
  });

  it('makes exactly one operator from two submissions at once', async () => {
    const { t, link } = await start();
    const pages = await Promise.all([openSetup(link), openSetup(link)]);
    const results = await Promise.all(
      pages.map((page, i) =>
        submit(page.browser, `${t.url}/setup`, {
          ...parseForm(page.html, '/setup').hidden,
          ...fields(`racer${i}@example.com`),
        }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 404]);
    expect(await operators(t)).toBe(1);
  });
});
