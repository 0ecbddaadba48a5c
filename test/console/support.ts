// Console test helpers: an app whose PUBLIC_URL is its loopback address, accounts with
// passwords, headless Chromium (Debian's) driven by playwright-core, axe-core run inside the
// page, and screenshots for docs/console.md.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { expect } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestClock } from '../support/clock.ts';
import type { TestApp } from '../support/app.ts';
import { ROOT, freePort } from '../support/process.ts';
import { Browser as IdentityBrowser } from '../identity/support.ts';
import { PASSWORD } from '../support/fixtures.ts';

export const CHROMIUM = '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);

export async function startConsoleApp(
  env: Record<string, string> = {},
  clock?: TestClock,
): Promise<TestApp> {
  const port = await freePort();
  return startTestApp({ port, clock, env: { PUBLIC_URL: `http://127.0.0.1:${port}`, ...env } });
}

export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** Opens the console in a fresh context and signs in through tollhouse's own login page. */
export async function signIn(
  browser: Browser,
  t: TestApp,
  email: string,
  options: { checkLoginPage?: boolean } = {},
): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  // Confirm dialogs (revoke) are accepted, as a user clicking OK would.
  page.on('dialog', (dialog) => void dialog.accept());
  await page.goto(`${t.url}/console`);
  if (options.checkLoginPage === true) {
    // identity's sign-in page is the first page of the console anyone sees.
    await expectAccessible(page);
    await screenshot(page, 'sign-in');
  }
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  // A customer without a key lands on "get started" (pages/get-started.ts), anyone else here.
  await page.waitForURL(new RegExp(`^${t.url}/console(/get-started)?$`));
  return page;
}

const axeSource = readFileSync(
  createRequire(import.meta.url).resolve('axe-core/axe.min.js'),
  'utf8',
);

/** Runs axe-core in the page; fails on any serious or critical violation. */
export async function expectAccessible(page: Page): Promise<void> {
  // Evaluated through the DevTools protocol: the console's CSP (rightly) refuses inline scripts.
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- axe and the DOM live in the page
    const page = globalThis as any;
    const result = await page.axe.run(page.document, {
      runOnly: {
        type: 'tag',
        values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'],
      },
    });
    return (
      result.violations as Array<{
        id: string;
        impact: string;
        help: string;
        nodes: Array<{ target: string[] }>;
      }>
    ).map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => n.target.join(' ')).slice(0, 5),
    }));
  });
  const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(serious, `${page.url()}: ${JSON.stringify(serious, null, 2)}`).toEqual([]);
}

/** Saves docs/screenshots/<name>.png (committed; docs/console.md shows them). */
/**
 * Renders the page as a PNG (so a broken layout fails here too) and, with UPDATE_SCREENSHOTS=1,
 * writes it to docs/screenshots for docs/console.md: a plain test run leaves the checkout clean.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  const update = process.env.UPDATE_SCREENSHOTS === '1';
  const png = await page.screenshot({
    fullPage: true,
    ...(update ? { path: `${ROOT}docs/screenshots/${name}.png` } : {}),
  });
  if (png.length === 0) throw new Error(`screenshot ${name} is empty`);
}

/** Signs in over plain HTTP (no browser): the cookie jar then carries a console session. */
export async function signInHttp(t: TestApp, email: string): Promise<HttpSession> {
  const jar = new IdentityBrowser();
  const start = await jar.follow(`${t.url}/console/login`, `${t.url}/console/callback`);
  const html = await start.response.text();
  const done = await jar.submit(
    start.url,
    html,
    '/login',
    { email, password: PASSWORD },
    `${t.url}/console/callback`,
  );
  const callback = await jar.request(done.url);
  expect(callback.status).toBe(303);
  expect(callback.headers.get('location')).toMatch(/^\/console(\/get-started)?$/);
  const page = await (await jar.request(`${t.url}/console/keys`)).text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1];
  if (csrf === undefined) throw new Error('no CSRF token on the keys page');
  return {
    jar,
    csrf,
    cookie: jar.cookies.get('tollhouse_console')!,
    landing: callback.headers.get('location')!,
  };
}

export interface HttpSession {
  jar: IdentityBrowser;
  csrf: string;
  cookie: string;
  /** Where the console sent the browser after sign-in. */
  landing: string;
}

/** POSTs a console form as a browser on `origin` would. */
export async function post(
  t: TestApp,
  session: HttpSession | null,
  path: string,
  fields: Record<string, string | string[]>,
  options: { origin?: string | null; contentType?: string; body?: string } = {},
) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) {
    for (const value of Array.isArray(v) ? v : [v]) body.append(k, value);
  }
  const headers: Record<string, string> = {
    'content-type': options.contentType ?? 'application/x-www-form-urlencoded',
  };
  const origin = options.origin === undefined ? t.url : options.origin;
  if (origin !== null) headers.origin = origin;
  if (session !== null) headers.cookie = `tollhouse_console=${session.cookie}`;
  const response = await fetch(`${t.url}${path}`, {
    method: 'POST',
    headers,
    body: options.body ?? body,
    redirect: 'manual',
  });
  return {
    status: response.status,
    location: response.headers.get('location'),
    text: await response.text(),
  };
}

/**
 * The authorization endpoint's first answer for `clientId` and `redirectUri` (code flow, PKCE
 * S256): a redirect into sign-in when it accepts the redirect URI, a 400 page when it does not.
 */
export async function authorize(t: TestApp, clientId: string, redirectUri: string) {
  const url = new URL(`${t.url}/oidc/auth`);
  url.search = new URLSearchParams({
    client_id: clientId,
    redirect_uri: redirectUri,
    response_type: 'code',
    scope: 'openid',
    state: 'console-test',
    // Any well-formed S256 challenge: the flow is not finished here.
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
  }).toString();
  const response = await fetch(url, { redirect: 'manual' });
  return {
    status: response.status,
    location: response.headers.get('location'),
    text: await response.text(),
  };
}

/** Every app row, secrets' hashes included: what must not change when a request is refused. */
export async function appRows(t: TestApp) {
  return t.app.database.db.selectFrom('apps').selectAll().orderBy('id').execute();
}

/** A web app of another account, which a customer must neither see nor change. */
export async function otherAccountApp(t: TestApp, ownerAccountId: string): Promise<string> {
  const created = await t.app.identity.apps.create(
    {
      name: 'Other web',
      kind: 'web',
      ownerAccountId,
      redirectUris: ['https://other.example/cb'],
    },
    { id: 'test' },
  );
  return created.app.id;
}
