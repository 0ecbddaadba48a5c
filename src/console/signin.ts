// Signing in to the console with tollhouse's own OpenID provider: the console is a public
// client (authorization code + PKCE S256, RFC 7636). The browser only ever carries the code;
// the console server redeems it at the token endpoint and keeps the tokens in its session.
import { createHash, randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import type { Context } from 'koa';
import type { Authenticator } from '../platform/auth.ts';
import type { Router } from '../platform/http.ts';
import type { RequestState } from '../platform/http.ts';
import type { Secrets } from '../platform/secrets.ts';
import type { ApiClient } from './api.ts';
import { securityHeaders } from './framework.ts';
import type { createFramework } from './framework.ts';
import { html } from '../platform/html.ts';
import type { SessionStore } from './session.ts';
import { landing } from './pages/get-started.ts';
import type { GetStartedStore } from './pages/get-started.ts';
import { layout, notice } from './views.ts';

export const CONSOLE_CLIENT_ID = 'tollhouse-console';
/**
 * Every API scope but `usage:write`: the console shows usage and never reports it, and a
 * session cookie is the wrong credential to post billable events with (usage is written by
 * tollhouse itself and by an account's backend, with a key or an app's token).
 */
export const CONSOLE_API_SCOPES = ['gateway', 'signer', 'usage:read', 'billing:read', 'admin'];
const LOGIN_COOKIE = 'tollhouse_console_login';
// Long enough to type a password (and fetch it from a password manager), short enough that a
// stale login attempt cannot be finished much later.
const LOGIN_TTL_SECONDS = 600;
// The API scopes the console uses (CONSOLE_API_SCOPES); the provider grants `admin` only to
// operators' accounts (provider.ts).
const REQUESTED_SCOPES = `openid email profile ${CONSOLE_API_SCOPES.join(' ')}`;

export interface SignInDeps {
  publicUrl: string;
  secrets: Secrets;
  sessions: SessionStore;
  api: ApiClient;
  authenticator: Authenticator;
  secureCookies: boolean;
  framework: ReturnType<typeof createFramework>;
  getStarted: GetStartedStore;
}

/** Where a console page may send the browser back to after sign-in: console paths only. */
export function safeReturnTo(value: unknown): string {
  if (typeof value !== 'string') return '/console';
  return /^\/console(\/[A-Za-z0-9/_.-]*)?(\?[^#\\\s]*)?$/.test(value) && !value.includes('//')
    ? value
    : '/console';
}

export function signInRoutes(router: Router, deps: SignInDeps): void {
  const { publicUrl, secrets, sessions, api } = deps;
  const box = secrets.box('console-login');
  const redirectUri = `${publicUrl}/console/callback`;

  function failed(ctx: Context, status: number, message: string) {
    securityHeaders(ctx);
    ctx.set('Cache-Control', 'no-store');
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = layout({
      title: 'Sign-in did not complete',
      active: '',
      viewer: null,
      body: html`${notice('error', message)}
        <p><a class="button" href="/console/login">Sign in again</a></p>`,
    }).value;
  }

  router.get('/console/login', async function consoleLogin(ctx) {
    const state = randomBytes(32).toString('base64url');
    const nonce = randomBytes(32).toString('base64url');
    const verifier = randomBytes(32).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const returnTo = safeReturnTo(ctx.query.return_to);
    const expires = Date.now() + LOGIN_TTL_SECONDS * 1000;
    ctx.cookies.set(
      LOGIN_COOKIE,
      box.seal(JSON.stringify({ state, nonce, verifier, returnTo, expires })),
      {
        httpOnly: true,
        // Lax: the provider's redirect back to the callback is a top-level navigation.
        sameSite: 'lax',
        secure: deps.secureCookies,
        path: '/console/callback',
        maxAge: LOGIN_TTL_SECONDS * 1000,
        overwrite: true,
      },
    );
    const url = new URL(`${publicUrl}/oidc/auth`);
    url.search = new URLSearchParams({
      client_id: CONSOLE_CLIENT_ID,
      response_type: 'code',
      redirect_uri: redirectUri,
      scope: REQUESTED_SCOPES,
      state,
      nonce,
      code_challenge: challenge,
      code_challenge_method: 'S256',
    }).toString();
    ctx.set('Cache-Control', 'no-store');
    ctx.redirect(url.href);
  });

  router.get('/console/callback', async function consoleCallback(ctx) {
    const log = (ctx.state as RequestState).log;
    const sealed = ctx.cookies.get(LOGIN_COOKIE);
    ctx.cookies.set(LOGIN_COOKIE, '', { path: '/console/callback', maxAge: 0, overwrite: true });
    let pending: {
      state: string;
      nonce: string;
      verifier: string;
      returnTo: string;
      expires: number;
    };
    try {
      if (sealed === undefined) throw new Error('no login cookie');
      pending = JSON.parse(box.open(sealed));
    } catch {
      return failed(
        ctx,
        400,
        'This sign-in was not started here, or it took too long. Start again.',
      );
    }
    if (typeof ctx.query.state !== 'string' || ctx.query.state !== pending.state) {
      return failed(ctx, 400, 'This sign-in response does not match the sign-in that was started.');
    }
    if (pending.expires < Date.now()) {
      return failed(ctx, 400, 'This sign-in took too long. Start again.');
    }
    if (typeof ctx.query.error === 'string') {
      log.info({ error: ctx.query.error }, 'console sign-in refused by the provider');
      return failed(ctx, 400, 'Sign-in was cancelled or refused.');
    }
    if (typeof ctx.query.code !== 'string')
      return failed(ctx, 400, 'The sign-in response has no code.');

    const response = await api.fetch('/oidc/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: ctx.query.code,
        redirect_uri: redirectUri,
        client_id: CONSOLE_CLIENT_ID,
        code_verifier: pending.verifier,
      }),
    });
    const tokens = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (response.status !== 200 || typeof tokens.access_token !== 'string') {
      log.info({ status: response.status, error: tokens.error }, 'console code exchange failed');
      return failed(ctx, 400, 'The sign-in could not be completed. Start again.');
    }
    // The ID token came straight from the token endpoint over a direct connection, so its
    // signature need not be checked (OpenID Connect Core §3.1.3.7); its nonce still must match.
    const claims = typeof tokens.id_token === 'string' ? decodeJwt(tokens.id_token) : {};
    if (claims.nonce !== pending.nonce) {
      return failed(ctx, 400, 'The sign-in response does not match the sign-in that was started.');
    }
    // The access token is checked like every /v1 request checks it; its scopes decide the pages.
    let principal;
    try {
      principal = await deps.authenticator.authenticate(`Bearer ${tokens.access_token}`, {
        origin: null,
        log,
      });
    } catch {
      return failed(ctx, 400, 'The sign-in could not be completed. Start again.');
    }
    const expiresIn = typeof tokens.expires_in === 'number' ? tokens.expires_in : 0;
    await sessions.start(ctx, {
      accountId: principal.accountId,
      email: typeof claims.email === 'string' ? claims.email : principal.accountId,
      scopes: [...principal.scopes],
      accessToken: tokens.access_token,
      refreshToken: typeof tokens.refresh_token === 'string' ? tokens.refresh_token : null,
      expiresAt: new Date(Date.now() + expiresIn * 1000),
    });
    // A customer without a key starts on "get started" (issue #18 item 5).
    const accessToken = tokens.access_token;
    const target = await landing(
      deps.getStarted,
      { accountId: principal.accountId, isAdmin: principal.scopes.includes('admin') },
      async () => {
        const keys = await api.call(accessToken, 'GET', '/v1/keys?limit=100');
        const items = (keys.body as { keys?: Array<{ status: string }> } | undefined)?.keys;
        // Unreadable: not a reason to send anyone anywhere else.
        return keys.status !== 200 || (items ?? []).some((k) => k.status === 'active');
      },
      pending.returnTo,
    );
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(target);
  });

  deps.framework.action('/console/logout', async ({ ctx }) => {
    await sessions.end(ctx);
    // Ends the provider's session too, or "Sign in" would sign straight back in.
    const url = new URL(`${publicUrl}/oidc/session/end`);
    url.search = new URLSearchParams({
      client_id: CONSOLE_CLIENT_ID,
      post_logout_redirect_uri: `${publicUrl}/console/signed-out`,
    }).toString();
    return { redirect: url.href };
  });

  router.get('/console/signed-out', async function signedOut(ctx) {
    securityHeaders(ctx);
    ctx.type = 'html';
    ctx.body = layout({
      title: 'Signed out',
      active: '',
      viewer: null,
      body: html`<p>You are signed out of the tollhouse console.</p>
        <p><a class="button" href="/console/login">Sign in</a></p>`,
    }).value;
  });
}
