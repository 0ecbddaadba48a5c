// The login and consent pages oidc-provider sends browsers to (`/interaction/:uid`), and the
// OIDC mount itself. A page only works with the `_interaction` cookie oidc-provider set for
// that uid (SameSite=Lax), and every form also carries a double-submit CSRF token.
import { createCsrf } from '../platform/csrf.ts';
import { IncomingMessage } from 'node:http';
import type { Context, Middleware, Next } from 'koa';
import type Provider from 'oidc-provider';
import { setPageHeaders } from '../platform/html.ts';
import type { Router } from '../platform/http.ts';
import type { RequestState } from '../platform/http.ts';
import { SIGN_IN_CONTENT_SECURITY_POLICY, consentPage, errorPage, loginPage } from './pages.ts';
import { readVerifiedForm } from './page-forms.ts';
import type { ClientCredentials } from './client-credentials.ts';
import type { RateLimiter } from './rate-limit.ts';
import type { AccountsService } from './service.ts';
import type { SignInFlow } from './second-factor-flow.ts';

export const CSRF_COOKIE = 'tollhouse_csrf';
const GENERIC_LOGIN_ERROR = 'The email or password is not right, or the account cannot sign in.';
const TOO_MANY = 'Too many sign-in attempts. Wait a minute, then try again.';

export interface InteractionDeps {
  /** The provider serving now (it is replaced when the signing keys change). */
  provider: () => Provider;
  accounts: AccountsService;
  loginPerAccount: RateLimiter;
  loginPerIp: RateLimiter;
  secureCookies: boolean;
  /** Issue #18: the login page's links to the onboarding pages (onboarding-routes.ts). */
  loginLinks?: (uid: string) => { forgotPassword: string | null; signUp: string | null };
  /** First run: whether to tell this client's sign-in page that no operator exists yet (the
   * note names the server log, never the link). */
  noOperatorNote?: (clientId: unknown) => Promise<boolean>;
  /** Issue #18: "Continue with …" buttons for the upstream providers (upstream-routes.ts). */
  upstreamButtons?: (uid: string) => Array<{ name: string; action: string }>;
  /** Issue #18 item 4: the second factor, step-up and passkey sign-in (second-factor-flow.ts). */
  signIn?: SignInFlow;
}

export function interactionRoutes(router: Router, deps: InteractionDeps): void {
  const { accounts } = deps;
  // Each handler takes the current provider once, so one request never spans two instances.
  const current = deps.provider;

  const forms = createCsrf({
    cookie: CSRF_COOKIE,
    path: '/interaction',
    secure: deps.secureCookies,
  });

  const passkeyAction = (uid: string) =>
    deps.signIn === undefined ? {} : { passkeyAction: `/interaction/${uid}/passkey` };

  async function details(ctx: Context, provider: Provider) {
    try {
      return await provider.interactionDetails(ctx.req, ctx.res);
    } catch {
      return null;
    }
  }

  async function appName(provider: Provider, clientId: unknown): Promise<string> {
    const client = typeof clientId === 'string' ? await provider.Client.find(clientId) : undefined;
    return client?.clientName ?? 'the app';
  }

  function expired(ctx: Context) {
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = errorPage(
      'This sign-in request has expired',
      'Sign-in links work once and for an hour at most.',
    );
  }

  async function finish(ctx: Context, provider: Provider, result: Record<string, unknown>) {
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
      mergeWithLastSubmission: result.login === undefined,
    });
    ctx.status = 303;
    ctx.redirect(returnTo);
  }

  router.get('/interaction/:uid', async function showInteraction(ctx) {
    noStore(ctx);
    const provider = current();
    const interaction = await details(ctx, provider);
    if (interaction === null || interaction.uid !== ctx.params.uid) return expired(ctx);
    const name = await appName(provider, interaction.params.client_id);
    const csrf = forms.token(ctx);
    ctx.type = 'html';
    if (interaction.prompt.name === 'login') {
      if ((await deps.signIn?.stepUp(ctx, provider, interaction)) === true) return;
      ctx.body = loginPage({
        action: `/interaction/${interaction.uid}/login`,
        csrf,
        appName: name,
        email: '',
        error: null,
        links: deps.loginLinks?.(interaction.uid),
        upstream: deps.upstreamButtons?.(interaction.uid),
        noOperator: (await deps.noOperatorNote?.(interaction.params.client_id)) ?? false,
        ...passkeyAction(interaction.uid),
      });
      return;
    }
    const d = interaction.prompt.details as {
      missingOIDCScope?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    const scopes = [
      ...(d.missingOIDCScope ?? []),
      ...Object.values(d.missingResourceScopes ?? {}).flat(),
    ];
    ctx.body = consentPage({
      action: `/interaction/${interaction.uid}/confirm`,
      abortAction: `/interaction/${interaction.uid}/abort`,
      csrf,
      appName: name,
      scopes: [...new Set(scopes)],
    });
  });

  router.post('/interaction/:uid/login', async function submitLogin(ctx) {
    noStore(ctx);
    const provider = current();
    const interaction = await details(ctx, provider);
    if (interaction === null || interaction.uid !== ctx.params.uid) return expired(ctx);
    if (interaction.prompt.name !== 'login') return expired(ctx);
    const form = await readVerifiedForm(ctx, forms);
    if (form === null) return;
    const email = (form.email ?? '').slice(0, 320);
    const password = form.password ?? '';
    const render = async (status: number, error: string) => {
      ctx.status = status;
      ctx.type = 'html';
      ctx.body = loginPage({
        action: `/interaction/${interaction.uid}/login`,
        csrf: forms.token(ctx),
        appName: await appName(provider, interaction.params.client_id),
        email,
        error,
        links: deps.loginLinks?.(interaction.uid),
        upstream: deps.upstreamButtons?.(interaction.uid),
        noOperator: (await deps.noOperatorNote?.(interaction.params.client_id)) ?? false,
        ...passkeyAction(interaction.uid),
      });
    };
    const wait = Math.max(
      deps.loginPerIp.hit(ctx.ip),
      deps.loginPerAccount.hit(email.trim().toLowerCase()),
    );
    if (wait > 0) {
      ctx.set('Retry-After', String(wait));
      return render(429, TOO_MANY);
    }
    const account = await accounts.authenticate(email, password);
    if (account === null) {
      (ctx.state as RequestState).log.info('login refused');
      return render(401, GENERIC_LOGIN_ERROR);
    }
    if (deps.signIn !== undefined) {
      return deps.signIn.completeSignIn(ctx, provider, interaction, {
        accountId: account.id,
        amr: ['pwd'],
      });
    }
    await finish(ctx, provider, { login: { accountId: account.id } });
  });

  router.post('/interaction/:uid/confirm', async function submitConsent(ctx) {
    noStore(ctx);
    const provider = current();
    const interaction = await details(ctx, provider);
    if (interaction === null || interaction.uid !== ctx.params.uid) return expired(ctx);
    if (interaction.prompt.name !== 'consent') return expired(ctx);
    const form = await readVerifiedForm(ctx, forms);
    if (form === null) return;
    const accountId = interaction.session?.accountId;
    const clientId = interaction.params.client_id;
    if (accountId === undefined || typeof clientId !== 'string') return expired(ctx);
    const account = await accounts.get(accountId);
    if (account === null || account.status !== 'active') return expired(ctx);

    const grant =
      interaction.grantId === undefined
        ? new provider.Grant({ accountId, clientId })
        : await provider.Grant.find(interaction.grantId);
    if (grant === undefined) return expired(ctx);
    const d = interaction.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
      // Only operators' accounts may hand an app the admin scope.
      const allowed = account.isAdmin ? scopes : scopes.filter((s) => s !== 'admin');
      if (allowed.length > 0) grant.addResourceScope(indicator, allowed.join(' '));
    }
    const grantId = await grant.save();
    await finish(ctx, provider, { consent: { grantId } });
  });

  router.post('/interaction/:uid/abort', async function abortInteraction(ctx) {
    noStore(ctx);
    const provider = current();
    const interaction = await details(ctx, provider);
    if (interaction === null || interaction.uid !== ctx.params.uid) return expired(ctx);
    const form = await readVerifiedForm(ctx, forms);
    if (form === null) return;
    await finish(ctx, provider, {
      error: 'access_denied',
      error_description: 'The user denied access',
    });
  });

  // The device flow's user-code page lives at /oidc/device; /device is the short address to
  // print on a device's screen.
  router.get('/device', async function deviceShortcut(ctx) {
    ctx.redirect(`/oidc/device${ctx.querystring ? `?${ctx.querystring}` : ''}`);
  });
}

/** Every interaction answer: never cached, and a sign-in page's security headers. */
function noStore(ctx: Context) {
  ctx.set('Cache-Control', 'no-store');
  setPageHeaders(ctx, SIGN_IN_CONTENT_SECURITY_POLICY);
}

/**
 * Runs oidc-provider for `/oidc/*` (and `/.well-known/openid-configuration`) inside the app's
 * own middleware, so request ids, logs and metrics cover it, while its responses (OAuth error
 * format included) are its own. The token endpoint is rate limited per IP and per client first.
 */
export function oidcMiddleware(
  current: () => Provider,
  limits: { tokenPerIp: RateLimiter; tokenPerClient: RateLimiter },
  /** The client_credentials fast path of a provider (client-credentials.ts). */
  clientCredentials?: (provider: Provider) => ClientCredentials,
): Middleware {
  const handlers = new WeakMap<Provider, ReturnType<Provider['callback']>>();
  return async function oidc(ctx: Context, next: Next) {
    let path = ctx.path;
    if (path === '/.well-known/openid-configuration')
      path = '/oidc/.well-known/openid-configuration';
    if (path !== '/oidc' && !path.startsWith('/oidc/')) return next();
    ctx._matchedRoute = '/oidc/*';
    if (ctx.method === 'POST' && (path === '/oidc/token' || path === '/oidc/device/auth')) {
      // Per client only for client_secret_basic, read from the header: public clients put
      // client_id in the body, which oidc-provider parses itself.
      const clientId = limits.tokenPerClient.enabled
        ? basicClientId(ctx.get('authorization'))
        : null;
      const wait = Math.max(
        limits.tokenPerIp.hit(ctx.ip),
        clientId === null ? 0 : limits.tokenPerClient.hit(clientId),
      );
      if (wait > 0) {
        ctx.status = 429;
        ctx.set('Retry-After', String(wait));
        ctx.body = { error: 'slow_down', error_description: 'too many token requests' };
        return;
      }
    }
    // oidc-provider derives its mount path from originalUrl minus url (see its urlFor).
    const req = ctx.req as typeof ctx.req & { originalUrl?: string };
    const search = ctx.querystring ? `?${ctx.querystring}` : '';
    req.originalUrl = `${path}${search}`;
    req.url = `${path.slice('/oidc'.length) || '/'}${search}`;
    const provider = current();
    let request: IncomingMessage = req;
    if (clientCredentials !== undefined && path === '/oidc/token' && fastPathCandidate(ctx)) {
      const body = await readBody(req);
      // A failure (the database unreachable while looking the client up) is oidc-provider's
      // to meet again and answer in its own shape, as it would have without this path.
      const answer = await clientCredentials(provider)
        .issue({ authorization: req.headers.authorization, body })
        .catch(() => null);
      if (answer !== null) {
        // The headers oidc-provider's token endpoint sends with it: its CORS step for a
        // request without Origin (DPoP and client attestation are off), then no-store.
        ctx.vary('Origin');
        ctx.set('Access-Control-Allow-Origin', '*');
        ctx.set('Access-Control-Expose-Headers', 'WWW-Authenticate');
        ctx.set('Cache-Control', 'no-store');
        ctx.body = answer;
        return;
      }
      // oidc-provider reads the body itself: it gets the same request with the body replayed.
      request = replayed(req, body);
    }
    let handle = handlers.get(provider);
    if (handle === undefined) {
      handle = provider.callback();
      handlers.set(provider, handle);
    }
    ctx.respond = false;
    await handle(request, ctx.res);
  };
}

// A client_credentials request is a few dozen bytes; a larger body is not the usual request.
const FAST_PATH_MAX_BODY = 1024;
// A form, UTF-8 as oidc-provider reads it without a charset (fetch and openid-client name it).
const FORM = /^application\/x-www-form-urlencoded(?:;\s*charset=utf-8)?$/i;

/**
 * Whether a token request may be the one client-credentials.ts answers, from its headers
 * alone: a small form body of known length, Basic authentication, and nothing that changes
 * oidc-provider's answer (CORS, DPoP, client attestation, a charset to decode, a query).
 */
function fastPathCandidate(ctx: Context): boolean {
  const headers = ctx.req.headers;
  const length = headers['content-length'];
  return (
    ctx.method === 'POST' &&
    ctx.querystring === '' &&
    FORM.test(headers['content-type'] ?? '') &&
    length !== undefined &&
    /^[1-9][0-9]{0,3}$/.test(length) &&
    Number(length) <= FAST_PATH_MAX_BODY &&
    headers['transfer-encoding'] === undefined &&
    headers.authorization?.startsWith('Basic ') === true &&
    headers.origin === undefined &&
    headers.dpop === undefined &&
    headers['oauth-client-attestation'] === undefined &&
    headers['oauth-client-attestation-pop'] === undefined
  );
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The same request (socket, method, target, headers) with `body` to read again. */
function replayed(req: IncomingMessage, body: Buffer): IncomingMessage {
  const copy = new IncomingMessage(req.socket);
  copy.method = req.method;
  copy.url = req.url;
  (copy as { originalUrl?: string }).originalUrl = (req as { originalUrl?: string }).originalUrl;
  copy.httpVersion = req.httpVersion;
  copy.httpVersionMajor = req.httpVersionMajor;
  copy.httpVersionMinor = req.httpVersionMinor;
  copy.headers = req.headers;
  copy.rawHeaders = req.rawHeaders;
  copy.push(body);
  copy.push(null);
  copy.complete = true;
  return copy;
}

/** The client_id of an `Authorization: Basic` header (RFC 6749 §2.3.1: form-urlencoded). */
function basicClientId(authorization: string): string | null {
  const match = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
  if (match === null) return null;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  try {
    return decodeURIComponent(decoded.slice(0, colon).replaceAll('+', ' '));
  } catch {
    return null;
  }
}
