// "Your account" → sign-in providers (issue #18 item 3) over real HTTP: a console session
// links the account to an identity at a second tollhouse acting as the upstream provider,
// sees it listed, and unlinks it; a forged form and a malformed id change nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import { PASSWORD, accountWithPassword } from '../support/fixtures.ts';
import { freePort } from '../support/process.ts';
import { startTestApp } from '../support/app.ts';
import { Browser, startIdentityApp } from '../identity/support.ts';
import type { IdentityTestApp } from '../identity/support.ts';
import { post, signInHttp } from './support.ts';

/** Cookies kept per origin: the two tollhouses share a host and their cookies' names. */
class TwoSiteBrowser extends Browser {
  readonly sites = new Map<string, Browser>();
  override async request(url: string, init: RequestInit = {}): Promise<Response> {
    const origin = new URL(url).origin;
    let site = this.sites.get(origin);
    if (site === undefined) {
      site = new Browser();
      this.sites.set(origin, site);
    }
    return site.request(url, init);
  }
}

let upstream: IdentityTestApp;
let t: TestApp;

beforeAll(async () => {
  upstream = await startIdentityApp();
  const owner = await accountWithPassword(upstream, 'owner@example.com');
  await accountWithPassword(upstream, 'me-upstream@example.com');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const { app, clientSecret } = await upstream.app.identity.apps.create(
    {
      name: 'Console downstream',
      kind: 'web',
      ownerAccountId: owner.id,
      redirectUris: [`${url}/upstream/up/callback`],
      scopes: [],
      grantTypes: ['authorization_code'],
    },
    { id: 'test' },
  );
  t = await startTestApp({
    port,
    env: {
      PUBLIC_URL: url,
      UPSTREAM_OIDC_PROVIDERS: JSON.stringify([
        {
          id: 'up',
          name: 'Upstream Co',
          issuer: upstream.issuer,
          client_id: app.clientId,
          client_secret: clientSecret,
        },
      ]),
    },
  });
}, 60_000);
afterAll(async () => {
  await t?.close();
  await upstream?.close();
});

async function get(cookie: string, path: string) {
  const response = await fetch(`${t.url}${path}`, {
    headers: { cookie: `tollhouse_console=${cookie}` },
    redirect: 'manual',
  });
  return { status: response.status, text: await response.text() };
}

describe('console: sign-in providers', () => {
  it('links a provider from "Your account", lists it, and unlinks it', async () => {
    const account = await accountWithPassword(t, 'me@example.com');
    const session = await signInHttp(t, 'me@example.com');
    const page = await get(session.cookie, '/console/account');
    expect(page.status).toBe(200);
    expect(page.text).toContain('No provider is linked.');
    expect(page.text).toContain('Link Upstream Co');

    const forged = await post(t, session, '/console/account/identities/link', {
      csrf: 'forged',
      provider: 'up',
    });
    expect(forged.status).toBe(403);
    const unknown = await post(t, session, '/console/account/identities/link', {
      csrf: session.csrf,
      provider: 'nope',
    });
    expect(unknown.status).toBe(400);

    const started = await post(t, session, '/console/account/identities/link', {
      csrf: session.csrf,
      provider: 'up',
    });
    expect(started.status).toBe(200);
    const linkUrl = /href="([^"]*\/upstream\/link\?state=[^"]+)"/
      .exec(started.text)?.[1]
      ?.replaceAll('&amp;', '&');
    expect(linkUrl).toBeDefined();

    // The holder's browser opens the link and signs in at the upstream.
    const browser = new TwoSiteBrowser();
    const stop = `${t.url}/upstream/up/callback`;
    let at = await browser.follow(linkUrl!, stop);
    let html = await at.response.text();
    at = await browser.submit(
      at.url,
      html,
      '/login',
      { email: 'me-upstream@example.com', password: PASSWORD },
      stop,
    );
    if (!at.url.startsWith(stop)) {
      html = await at.response.text();
      at = await browser.submit(at.url, html, '/confirm', {}, stop);
    }
    expect(at.url.startsWith(stop)).toBe(true);
    const done = await browser.request(at.url);
    expect(done.status).toBe(200);
    expect(await done.text()).toContain('Upstream Co is linked');

    const listed = await get(session.cookie, '/console/account');
    expect(listed.text).toContain('me-upstream@example.com');
    expect(listed.text).not.toContain('Link Upstream Co');
    const id = /action="\/console\/account\/identities\/(idn_[0-9A-Za-z]{22})\/unlink"/.exec(
      listed.text,
    )?.[1];
    expect(id).toBeDefined();

    const malformed = await post(t, session, '/console/account/identities/x%00/unlink', {
      csrf: session.csrf,
    });
    expect(malformed.status).toBeGreaterThanOrEqual(400);
    expect(malformed.status).toBeLessThan(500);
    const unlinked = await post(t, session, `/console/account/identities/${id}/unlink`, {
      csrf: session.csrf,
    });
    expect(unlinked.status).toBe(303);
    expect(unlinked.location).toBe('/console/account?done=unlinked');
    const rows = await t.app.database.db
      .selectFrom('account_identities')
      .selectAll()
      .where('account_id', '=', account.id)
      .execute();
    expect(rows).toHaveLength(0);
  });

  it('offers "Continue with Upstream Co" on the console sign-in page', async () => {
    const browser = new Browser();
    const start = await browser.follow(`${t.url}/console/login`, `${t.url}/console/callback`);
    const html = await start.response.text();
    expect(html).toContain('Continue with Upstream Co');
    expect(html).toMatch(/action="\/interaction\/[^"]+\/upstream\/up"/);
  });
});
