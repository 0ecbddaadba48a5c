// Upstream sign-in over HTTP (issue #18 item 3). Browser pages:
//   POST /interaction/:uid/upstream/:provider   "Continue with …" on the login page
//   GET  /upstream/:provider/callback           the one redirect URI registered per provider
//   GET  /interaction/:uid/upstream/:provider/callback
//        a sign-in's callback, bounced under the interaction's path so its cookie comes along
//   GET  /upstream/link?state=…                 the link an account holder's browser opens
// and the holder's REST routes under /v1/account/identities.
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import type { AuthState } from '../platform/auth.ts';
import type { Access } from '../platform/authz.ts';
import { createCsrf } from '../platform/csrf.ts';
import { AppError } from '../platform/errors.ts';
import { html } from '../platform/html.ts';
import { defineRoute } from '../platform/http.ts';
import type { RequestState, Router } from '../platform/http.ts';
import { CSRF_COOKIE } from './interactions.ts';
import type { RateLimiter } from './rate-limit.ts';
import { readVerifiedForm, sendPage, withinLimits } from './page-forms.ts';
import { errorPage, layout } from './pages.ts';
import { FLOW_TTL_MS, UPSTREAM_LINK_PATH, UpstreamRefused } from './upstream.ts';
import type { UpstreamCaller, UpstreamSignIn } from './upstream.ts';
import type { SignInFlow } from './second-factor-flow.ts';

const STATE_COOKIE = 'tollhouse_upstream';
const PROVIDER_ID = /^[a-z0-9][a-z0-9-]{0,31}$/;
// oidc-provider's interaction uids (nanoid).
const UID = /^[A-Za-z0-9_-]{1,64}$/;
// openid-client's randomState(): 32 bytes in base64url.
const STATE = /^[A-Za-z0-9_-]{43}$/;

export interface UpstreamRouteDeps {
  upstream: UpstreamSignIn;
  /** The provider serving now (it is replaced when the signing keys change). */
  provider: () => Provider;
  secureCookies: boolean;
  /** The login form's per-IP limiter: each start writes a row before anyone signed in. */
  perIp: RateLimiter;
  /** Where every sign-in ends (second factor, step-up, amr/acr): upstream logins are `fed`. */
  signIn: SignInFlow;
}

/** The login page's "Continue with …" buttons for interaction `uid`. */
export function upstreamButtons(upstream: UpstreamSignIn) {
  return (uid: string) =>
    upstream.providers.map((p) => ({
      name: p.name,
      action: `/interaction/${uid}/upstream/${p.id}`,
    }));
}

export function upstreamPageRoutes(router: Router, deps: UpstreamRouteDeps): void {
  const { upstream } = deps;
  // The login page's own CSRF cookie (interactions.ts): its token is in the buttons' forms.
  const forms = createCsrf({
    cookie: CSRF_COOKIE,
    path: '/interaction',
    secure: deps.secureCookies,
  });

  function refused(ctx: Context, error: unknown) {
    if (error instanceof UpstreamRefused) {
      (ctx.state as RequestState).log.info({ code: error.code }, 'upstream sign-in refused');
      return sendPage(ctx, error.status, errorPage(error.title, error.message));
    }
    if (error instanceof AppError && error.status === 404) {
      return sendPage(
        ctx,
        404,
        errorPage('No such sign-in provider', 'Start again from the sign-in page.'),
      );
    }
    throw error;
  }

  const expired = (ctx: Context) =>
    sendPage(
      ctx,
      400,
      errorPage(
        'This sign-in has expired or was already used',
        'Start again from the sign-in page.',
      ),
    );

  function setStateCookie(ctx: Context, state: string | null) {
    ctx.cookies.set(STATE_COOKIE, state ?? '', {
      httpOnly: true,
      // Lax: the provider's redirect back is a top-level GET from another site.
      sameSite: 'lax',
      path: '/',
      secure: deps.secureCookies,
      overwrite: true,
      ...(state === null ? { maxAge: 0 } : { maxAge: FLOW_TTL_MS }),
    });
  }

  const cookieState = (ctx: Context) => {
    const value = ctx.cookies.get(STATE_COOKIE);
    return value !== undefined && STATE.test(value) ? value : null;
  };

  async function details(ctx: Context, provider: Provider) {
    try {
      const interaction = await provider.interactionDetails(ctx.req, ctx.res);
      return interaction.uid === ctx.params.uid && interaction.prompt.name === 'login'
        ? interaction
        : null;
    } catch {
      return null;
    }
  }

  router.post('/interaction/:uid/upstream/:provider', async function startUpstreamLogin(ctx) {
    const provider = deps.provider();
    if (!UID.test(ctx.params.uid!) || (await details(ctx, provider)) === null) return expired(ctx);
    if ((await readVerifiedForm(ctx, forms)) === null) return;
    if (!withinLimits(ctx, [[deps.perIp, ctx.ip]])) {
      return sendPage(
        ctx,
        429,
        errorPage('Too many sign-in attempts', 'Wait a minute, then try again.'),
      );
    }
    try {
      const started = await upstream.startLogin(ctx.params.provider!, ctx.params.uid!);
      setStateCookie(ctx, started.state);
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 303;
      ctx.redirect(started.url);
    } catch (error) {
      refused(ctx, error);
    }
  });

  router.get('/upstream/:provider/callback', async function upstreamCallback(ctx) {
    const providerId = ctx.params.provider!;
    const state = typeof ctx.query.state === 'string' ? ctx.query.state : '';
    if (!PROVIDER_ID.test(providerId) || !STATE.test(state)) return expired(ctx);
    const flow = await upstream.peek(state);
    if (flow === null) return expired(ctx);
    if (flow.purpose === 'login') {
      // Under the interaction's path, where oidc-provider's interaction cookie is sent.
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 303;
      ctx.redirect(
        `/interaction/${flow.interaction_uid}/upstream/${providerId}/callback?${ctx.querystring}`,
      );
      return;
    }
    try {
      const linked = await upstream.completeLink({
        providerId,
        callbackUrl: new URL(ctx.href),
        cookieState: cookieState(ctx),
      });
      setStateCookie(ctx, null);
      sendPage(
        ctx,
        200,
        layout(
          'Linked',
          html`<h1>${linked.provider.name} is linked</h1>
            <p>
              You can now sign in with
              ${linked.provider.name}${linked.email === null ? '' : ` (${linked.email})`}.
            </p>
            <p><a href="/console/account">Back to your account</a></p>`,
        ),
      );
    } catch (error) {
      refused(ctx, error);
    }
  });

  router.get(
    '/interaction/:uid/upstream/:provider/callback',
    async function finishUpstreamLogin(ctx) {
      const provider = deps.provider();
      const interaction = UID.test(ctx.params.uid!) ? await details(ctx, provider) : null;
      if (interaction === null) return expired(ctx);
      let accountId: string;
      try {
        const account = await upstream.completeLogin({
          providerId: ctx.params.provider!,
          callbackUrl: new URL(ctx.href),
          cookieState: cookieState(ctx),
          uid: ctx.params.uid!,
        });
        accountId = account.id;
      } catch (error) {
        return refused(ctx, error);
      }
      setStateCookie(ctx, null);
      ctx.set('Cache-Control', 'no-store');
      // RFC 8176 `fed`: a federated identity provider vouched for the first factor; a second
      // factor, when the account has one or must have one, is asked for as after a password.
      await deps.signIn.completeSignIn(ctx, provider, interaction, { accountId, amr: ['fed'] });
    },
  );

  router.get(UPSTREAM_LINK_PATH, async function startUpstreamLink(ctx) {
    const state = typeof ctx.query.state === 'string' ? ctx.query.state : '';
    if (!STATE.test(state)) return expired(ctx);
    try {
      const started = await upstream.startLink(state);
      setStateCookie(ctx, started.state);
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 303;
      ctx.redirect(started.url);
    } catch (error) {
      refused(ctx, error);
    }
  });
}

const identitySchema = z.strictObject({
  id: z.string(),
  provider: z.string(),
  provider_name: z.string(),
  subject: z.string(),
  email: z.string().nullable(),
  linked_at: z.string(),
  last_used_at: z.string().nullable(),
});

export function upstreamApiRoutes(router: Router, { upstream }: { upstream: UpstreamSignIn }) {
  const self: Access = {
    kinds: ['account'],
    note: 'Always the caller’s own account.',
  };
  const callerOf = (ctx: { state: unknown }): UpstreamCaller => {
    const { principal, requestId } = ctx.state as AuthState;
    return {
      accountId: principal.accountId,
      actor: principal.keyId ?? principal.accountId,
      requestId,
    };
  };

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/account/identities',
      response: z.strictObject({
        identities: z.array(identitySchema),
        providers: z.array(z.strictObject({ id: z.string(), name: z.string() })),
      }),
      access: self,
    },
    async ({ ctx }) => ({
      identities: (await upstream.list(callerOf(ctx).accountId)).map((identity) => ({
        id: identity.id,
        provider: identity.provider,
        provider_name: identity.providerName,
        subject: identity.subject,
        email: identity.email,
        linked_at: identity.linkedAt.toISOString(),
        last_used_at: identity.lastUsedAt?.toISOString() ?? null,
      })),
      providers: upstream.providers.map((p) => ({ id: p.id, name: p.name })),
    }),
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/account/identities',
      body: z.strictObject({ provider: z.string().regex(PROVIDER_ID) }),
      response: z.strictObject({ link_url: z.string(), expires_at: z.string() }),
      status: 202,
      access: {
        ...self,
        note: 'Starts linking: the caller’s browser opens link_url (once, within ten minutes) and signs in at the provider.',
      },
    },
    async ({ body, ctx }) => {
      const link = await upstream.createLink(callerOf(ctx), body.provider);
      return { link_url: link.url, expires_at: link.expiresAt.toISOString() };
    },
  );

  defineRoute(
    router,
    {
      method: 'delete',
      path: '/v1/account/identities/:id',
      params: z.object({ id: z.string().max(100) }),
      response: z.undefined(),
      status: 204,
      access: {
        ...self,
        note: 'Only the caller’s own identities; any other id answers 404. Refused (409) when it would leave no way to sign in.',
      },
    },
    async ({ params, ctx }) => {
      await upstream.unlink(callerOf(ctx), params.id);
      return undefined;
    },
  );
}
