// The sign-in pages show values an attacker chooses: an app's name (any account may register an
// app) and the e-mail typed into the form, echoed back after a failed attempt. Each must come
// back as text, never as markup.
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, discover, pkce, startIdentityApp } from './support.ts';
import type { IdentityTestApp } from './support.ts';
import { PASSWORD, accountWithPassword } from '../support/fixtures.ts';

let t: IdentityTestApp;
let ownerId: string;
const REDIRECT = 'http://127.0.0.1:9/callback';

// Closes the attribute and the element, then opens a script: every character html must escape.
const HOSTILE_NAME = `"'><script>alert('app')</script>&amp;`;
const ESCAPED_NAME = '&quot;&#39;&gt;&lt;script&gt;alert(&#39;app&#39;)&lt;/script&gt;&amp;amp;';
const HOSTILE_EMAIL = `"><img src=x onerror=alert(1)>@example.com`;
const ESCAPED_EMAIL = '&quot;&gt;&lt;img src=x onerror=alert(1)&gt;@example.com';

beforeAll(async () => {
  t = await startIdentityApp();
  ownerId = (await accountWithPassword(t, 'owner@example.com')).id;
  await accountWithPassword(t, 'user@example.com');
});
afterAll(async () => t.close());

/** Opens the authorization URL of a web app named HOSTILE_NAME; returns the login page. */
async function openLoginPage() {
  const { app, clientSecret } = await t.app.identity.apps.create(
    {
      name: HOSTILE_NAME,
      kind: 'web',
      ownerAccountId: ownerId,
      redirectUris: [REDIRECT],
      scopes: ['gateway'],
    },
    { id: 'test' },
  );
  const config = await discover(t, app.clientId, clientSecret);
  const browser = new Browser();
  const p = await pkce();
  const page = await browser.follow(
    oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid gateway',
      code_challenge: p.challenge,
      code_challenge_method: 'S256',
    }).href,
    REDIRECT,
  );
  expect(page.response.status).toBe(200);
  return { browser, page, html: await page.response.text() };
}

/** No markup from the hostile values survived: no script, no img, no broken attribute. */
function expectNoInjectedMarkup(html: string) {
  expect(html).not.toContain('<script');
  expect(html).not.toContain('<img');
  expect(html).not.toContain(`"'>`);
}

describe('sign-in pages', () => {
  it('show a hostile app name as text on the login page', async () => {
    const { html } = await openLoginPage();
    expect(html).toContain(`<h1>Sign in to continue to ${ESCAPED_NAME}</h1>`);
    expectNoInjectedMarkup(html);
  });

  it('echo a hostile e-mail back as an attribute value after a failed sign-in', async () => {
    const { browser, page, html } = await openLoginPage();
    const result = await browser.submit(
      page.url,
      html,
      '/login',
      { email: HOSTILE_EMAIL, password: 'not the password' },
      REDIRECT,
    );
    expect(result.response.status).toBe(401);
    const again = await result.response.text();
    expect(again).toContain(`value="${ESCAPED_EMAIL}"`);
    expect(again).toContain('role="alert"');
    expectNoInjectedMarkup(again);
  });

  it('show a hostile app name as text on the consent page', async () => {
    const { browser, page, html } = await openLoginPage();
    const consent = await browser.submit(
      page.url,
      html,
      '/login',
      { email: 'user@example.com', password: PASSWORD },
      REDIRECT,
    );
    const text = await consent.response.text();
    expect(text).toContain('/confirm"');
    expect(text).toContain(`<h1>${ESCAPED_NAME} wants access to your account</h1>`);
    expect(text).toContain(`If you allow it, ${ESCAPED_NAME} will be able to:`);
    expectNoInjectedMarkup(text);
  });
});
