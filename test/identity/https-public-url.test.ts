// An https PUBLIC_URL in front of tollhouse's plain-HTTP listener: `serve` refuses to start
// without TRUST_PROXY; behind a proxy that says X-Forwarded-Proto: https, sign-in works with
// Secure cookies; a browser page reached over plain HTTP anyway is a 400 that says what to
// fix, never a 500.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { freePort, runCli } from '../support/process.ts';
import { Browser } from './support.ts';
import { PASSWORD, accountWithPassword } from '../support/fixtures.ts';

/** A TLS-terminating proxy, simulated: https URLs are fetched over http with the header. */
class ProxiedBrowser extends Browser {
  readonly setCookies: string[] = [];
  override async request(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('x-forwarded-proto', 'https');
    const response = await super.request(url.replace(/^https:/, 'http:'), { ...init, headers });
    this.setCookies.push(...response.headers.getSetCookie());
    return response;
  }
}

const HTTPS_REQUIRED = {
  error: 'HttpsRequired',
  message:
    'This page must be reached over HTTPS (PUBLIC_URL is https), but the request arrived over plain HTTP. Behind a TLS proxy, set TRUST_PROXY=true and have the proxy send X-Forwarded-Proto: https.',
};

describe('tollhouse serve', () => {
  it('refuses an https PUBLIC_URL without TRUST_PROXY: one clear message, exit 78', async () => {
    const port = await freePort();
    const result = await runCli(['serve'], {
      TOLLHOUSE_SECRET: 'a'.repeat(64),
      HOST: '127.0.0.1',
      PORT: String(port),
      PUBLIC_URL: 'https://api.example.com',
    });
    expect(result.code).toBe(78);
    expect(result.stderr).toContain('TRUST_PROXY: PUBLIC_URL is https but TRUST_PROXY is false.');
    expect(result.stderr).not.toMatch(/^\s+at /m);
    expect(result.stdout).toBe('');
  });
});

describe('behind a TLS proxy (TRUST_PROXY=true)', () => {
  let t: TestApp;
  let publicUrl: string;
  beforeAll(async () => {
    const port = await freePort();
    publicUrl = `https://127.0.0.1:${port}`;
    t = await startTestApp({ port, env: { PUBLIC_URL: publicUrl, TRUST_PROXY: 'true' } });
    await accountWithPassword(t, 'user@example.com');
  });
  afterAll(async () => t?.close());

  it('signs in to the console with Secure cookies when the proxy says https', async () => {
    const browser = new ProxiedBrowser();
    const callback = `${publicUrl}/console/callback`;
    const start = await browser.follow(`${publicUrl}/console/login`, callback);
    expect(start.response.status).toBe(200);
    const html = await start.response.text();
    const done = await browser.submit(
      start.url,
      html,
      '/login',
      { email: 'user@example.com', password: PASSWORD },
      callback,
    );
    expect(done.url.startsWith(callback)).toBe(true);
    const landed = await browser.request(done.url);
    expect(landed.status).toBe(303);
    const keys = await browser.request(`${publicUrl}/console/keys`);
    expect(keys.status).toBe(200);
    expect(browser.setCookies.length).toBeGreaterThan(0);
    for (const line of browser.setCookies) expect(line.toLowerCase()).toContain('; secure');
  });

  it('a browser page reached over plain HTTP is 400 HttpsRequired, not 500', async () => {
    for (const path of [
      '/console/login',
      '/console',
      '/interaction/some-uid',
      '/oidc/auth?client_id=x&response_type=code',
      '/oidc/device',
      '/oidc/session/end',
    ]) {
      const response = await fetch(`${t.url}${path}`, { redirect: 'manual' });
      expect(response.status, path).toBe(400);
      expect(await response.json()).toEqual(HTTPS_REQUIRED);
    }
  });

  it('endpoints that set no cookies still answer over plain HTTP', async () => {
    expect((await fetch(`${t.url}/oidc/jwks`)).status).toBe(200);
    expect((await fetch(`${t.url}/.well-known/openid-configuration`)).status).toBe(200);
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
  });
});

describe('without TRUST_PROXY (an app built directly, as a library user might)', () => {
  let t: TestApp;
  beforeAll(async () => {
    const port = await freePort();
    t = await startTestApp({ port, env: { PUBLIC_URL: `https://127.0.0.1:${port}` } });
  });
  afterAll(async () => t?.close());

  it('sign-in answers 400 with the fix, never a 500', async () => {
    for (const headers of [{}, { 'x-forwarded-proto': 'https' }]) {
      const response = await fetch(`${t.url}/console/login`, { headers, redirect: 'manual' });
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual(HTTPS_REQUIRED);
    }
  });
});
