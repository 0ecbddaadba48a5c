// Identity test helpers: an app whose PUBLIC_URL is its real loopback address (openid-client
// checks the issuer), a browser that keeps cookies and submits forms, and a relying party.
import * as oidc from 'openid-client';
import { expect } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { PASSWORD } from '../support/fixtures.ts';
import { freePort } from '../support/process.ts';

export interface IdentityTestApp extends TestApp {
  issuer: string;
}

export async function startIdentityApp(env: Record<string, string> = {}): Promise<IdentityTestApp> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const t = await startTestApp({ port, env: { PUBLIC_URL: url, ...env } });
  return Object.assign(t, { issuer: `${url}/oidc` });
}

/** A minimal browser: cookie jar (by name), manual redirects, form submission. */
export class Browser {
  readonly cookies = new Map<string, string>();

  async request(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0) {
      headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    }
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = attributes.some(
        (a) => /^\s*max-age=0/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a),
      );
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return response;
  }

  /** Follows redirects until a page (200/4xx) or a redirect to `stopAt` (the app's callback). */
  async follow(
    url: string,
    stopAt: string,
    init?: RequestInit,
  ): Promise<{ url: string; response: Response }> {
    let current = url;
    let response = await this.request(current, init);
    for (let i = 0; i < 10; i++) {
      if (response.status < 300 || response.status >= 400) return { url: current, response };
      const location = new URL(response.headers.get('location')!, current).href;
      if (location.startsWith(stopAt)) return { url: location, response };
      current = location;
      response = await this.request(current);
    }
    throw new Error('too many redirects');
  }

  /** Submits `form` (by action) from `html` with `fields` added to its hidden inputs. */
  async submit(
    pageUrl: string,
    html: string,
    actionPart: string,
    fields: Record<string, string>,
    stopAt: string,
  ) {
    const form = parseForm(html, actionPart);
    const body = new URLSearchParams({ ...form.hidden, ...fields });
    return this.follow(new URL(form.action, pageUrl).href, stopAt, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
  }
}

export function parseForm(html: string, actionPart: string) {
  const forms = [...html.matchAll(/<form\b[^>]*>[\s\S]*?<\/form>/g)].map((m) => m[0]);
  const form = forms.find((f) => {
    const action = /action="([^"]*)"/.exec(f)?.[1] ?? '';
    return action.includes(actionPart);
  });
  if (form === undefined) throw new Error(`no form with action ${actionPart} in:\n${html}`);
  const action = /action="([^"]*)"/.exec(form)![1]!.replaceAll('&amp;', '&');
  const hidden: Record<string, string> = {};
  for (const input of form.matchAll(/<input\b[^>]*type="hidden"[^>]*>/g)) {
    const name = /name="([^"]*)"/.exec(input[0])?.[1];
    const value = /value="([^"]*)"/.exec(input[0])?.[1] ?? '';
    if (name !== undefined) hidden[name] = value;
  }
  return { action, hidden };
}

export async function discover(
  t: IdentityTestApp,
  clientId: string,
  clientSecret: string | null,
): Promise<oidc.Configuration> {
  return oidc.discovery(
    new URL(t.issuer),
    clientId,
    undefined,
    clientSecret === null ? oidc.None() : oidc.ClientSecretBasic(clientSecret),
    { execute: [oidc.allowInsecureRequests] },
  );
}

/**
 * The authorization code + PKCE flow as a browser runs it: authorize, log in on the login
 * page, allow on the consent page, land on the redirect URI; returns the callback URL.
 */
export async function browserLogin(input: {
  browser: Browser;
  config: oidc.Configuration;
  redirectUri: string;
  scope: string;
  email: string;
  password?: string;
  codeChallenge: string;
  state: string;
  extra?: Record<string, string>;
}): Promise<URL> {
  const authUrl = oidc.buildAuthorizationUrl(input.config, {
    redirect_uri: input.redirectUri,
    scope: input.scope,
    code_challenge: input.codeChallenge,
    code_challenge_method: 'S256',
    state: input.state,
    // OIDC Core §11: offline_access (a refresh token) is only granted with prompt=consent.
    ...(input.scope.includes('offline_access') ? { prompt: 'consent' } : {}),
    ...input.extra,
  });
  let page = await input.browser.follow(authUrl.href, input.redirectUri);
  if (page.url.startsWith(input.redirectUri)) return new URL(page.url);
  let html = await page.response.text();
  if (html.includes('/login"')) {
    expect(page.response.status).toBe(200);
    page = await input.browser.submit(
      page.url,
      html,
      '/login',
      { email: input.email, password: input.password ?? PASSWORD },
      input.redirectUri,
    );
    if (page.url.startsWith(input.redirectUri)) return new URL(page.url);
    html = await page.response.text();
  }
  if (!html.includes('/confirm"'))
    throw new Error(`expected the consent page, got ${page.response.status}:\n${html}`);
  page = await input.browser.submit(page.url, html, '/confirm', {}, input.redirectUri);
  if (!page.url.startsWith(input.redirectUri)) {
    throw new Error(
      `expected a redirect to the app, got ${page.response.status}: ${await page.response.text()}`,
    );
  }
  return new URL(page.url);
}

export async function pkce() {
  const verifier = oidc.randomPKCECodeVerifier();
  return {
    verifier,
    challenge: await oidc.calculatePKCECodeChallenge(verifier),
    state: oidc.randomState(),
  };
}

/**
 * A confidential web app of `ownerAccountId` ("Photo Studio", code and refresh grants) and the
 * relying party openid-client makes of it: the app most sign-in and onboarding tests log into.
 */
export async function photoStudio(
  t: IdentityTestApp,
  ownerAccountId: string,
  redirectUri: string,
): Promise<oidc.Configuration> {
  const { app, clientSecret } = await t.app.identity.apps.create(
    {
      name: 'Photo Studio',
      kind: 'web',
      ownerAccountId,
      redirectUris: [redirectUri],
      scopes: ['gateway'],
      grantTypes: ['authorization_code', 'refresh_token'],
    },
    { id: 'test' },
  );
  return discover(t, app.clientId, clientSecret);
}
