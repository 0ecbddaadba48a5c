// HTTP: /v1/streams (stream keys for live video) and /webhooks/livepeer/* (go-livepeer's
// stream auth, live AI auth and remote-signer auth webhooks, LIVEPEER.md §5).
import { timingSafeEqual } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Authenticator, AuthState, Principal } from '../platform/auth.ts';
import { bearerCredential, hasScope, requireAuth, ruleFailed } from '../platform/auth.ts';
import { AppError, Forbidden, ServiceUnavailable, Unauthorized } from '../platform/errors.ts';
import type { AppContext, Router } from '../platform/http.ts';
import { defineRoute } from '../platform/http.ts';
import type { SpendGate } from '../platform/spend.ts';
import {
  createStreamBody,
  issuedStream,
  liveAuthBody,
  liveAuthReply,
  signerAuthBody,
  signerAuthReply,
  streamAuthBody,
  streamAuthReply,
  streamList,
  streamParams,
  streamView,
} from './schemas.ts';
import type { StreamService } from './streams.ts';

export interface GatewayRoutesDeps {
  streams: StreamService;
  authenticator: Authenticator;
  spend: SpendGate;
  webhookSecret: string | null;
  clock: () => Date;
}

// go-livepeer's signer does not call the webhook again before `expiry`: one minute keeps a
// refused or revoked caller from signing for long, at one webhook call per minute per caller.
const SIGNER_AUTH_TTL_SECONDS = 60;

export function gatewayRoutes(router: Router, deps: GatewayRoutesDeps): void {
  const { streams, authenticator, spend, clock } = deps;
  const backendOnly: Middleware = async function backendOnly(ctx, next) {
    // Browser keys pass requireAuth on gateway-scope routes, but stream keys are secrets a
    // web page must not be able to list or mint.
    if ((ctx.state as AuthState).principal.allowedOrigins !== null) {
      throw ruleFailed('browser-key-scope', 'Browser keys cannot manage streams');
    }
    await next();
  };
  const before = [requireAuth(authenticator, ['gateway']), backendOnly];
  const principal = (ctx: AppContext) => (ctx.state as AuthState).principal;

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/streams',
      body: createStreamBody,
      response: issuedStream,
      status: 201,
      before,
    },
    async function createStream({ body, ctx }) {
      ctx.set('Cache-Control', 'no-store');
      const { stream, streamKey } = await streams.create(principal(ctx), body.name);
      return { ...stream, streamKey };
    },
  );
  defineRoute(
    router,
    { method: 'get', path: '/v1/streams', response: streamList, before },
    async function listStreams({ ctx }) {
      return { streams: await streams.list(principal(ctx)) };
    },
  );
  defineRoute(
    router,
    {
      method: 'delete',
      path: '/v1/streams/:id',
      params: streamParams,
      response: streamView,
      before,
    },
    async function revokeStream({ params, ctx }) {
      return streams.revoke(principal(ctx), params.id);
    },
  );

  const webhook = [webhookAuth(deps.webhookSecret)];

  defineRoute(
    router,
    {
      method: 'post',
      path: '/webhooks/livepeer/stream-auth',
      body: streamAuthBody,
      response: streamAuthReply,
      before: webhook,
    },
    async function streamAuth({ body }) {
      // go-livepeer sends the ingest URL, e.g. rtmp://host:1935/live/<streamKey>.
      const key = lastPathSegment(body.url);
      const stream = key === null ? null : await streams.byKey(key);
      if (stream === null || key === null) throw new Forbidden('Unknown or revoked stream key');
      return { manifestID: stream.id, streamKey: key };
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/webhooks/livepeer/live-ai-auth',
      body: liveAuthBody,
      response: liveAuthReply,
      before: webhook,
    },
    async function liveAiAuth({ body }) {
      const key = body.stream_key ?? body.stream ?? '';
      const stream = await streams.byKey(key);
      if (stream === null) throw new Forbidden('Unknown or revoked stream key');
      return { stream_id: stream.id };
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/webhooks/livepeer/remote-signer-auth',
      body: signerAuthBody,
      response: signerAuthReply,
      before: webhook,
    },
    async function remoteSignerAuth({ body, ctx }) {
      // Always HTTP 200: go-livepeer reads the decision from `status` (LIVEPEER.md §5).
      const authorization = headerValue(body.headers, 'authorization');
      let caller: Principal;
      try {
        caller = await authenticator.authenticate(authorization, {
          origin: null,
          log: ctx.state.log,
        });
        if (caller.allowedOrigins !== null) {
          throw new Forbidden('Browser keys cannot authorize signer payments');
        }
        if (!hasScope(caller, 'signer') && !hasScope(caller, 'gateway')) {
          throw new Forbidden('This credential lacks the signer scope');
        }
        await spend.assertMaySpend(caller);
      } catch (error) {
        if (error instanceof AppError && [401, 402, 403].includes(error.status)) {
          return { status: error.status, reason: error.message };
        }
        throw error;
      }
      return {
        status: 200,
        auth_id: caller.keyId ?? caller.clientId ?? caller.accountId,
        expiry: Math.floor(clock().getTime() / 1000) + SIGNER_AUTH_TTL_SECONDS,
      };
    },
  );
}

function headerValue(headers: Record<string, string | string[]>, name: string): string | undefined {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== name) continue;
    return Array.isArray(value) ? value[0] : value;
  }
  return undefined;
}

function lastPathSegment(url: string): string | null {
  if (!URL.canParse(url)) return null;
  const segments = new URL(url).pathname.split('/').filter(Boolean);
  return segments.at(-1) ?? null;
}

/**
 * go-livepeer authenticates to the webhooks with LIVEPEER_WEBHOOK_SECRET: `-liveAIAuthWebhookUrl`
 * sends its configured key as both `x-api-key` and `Authorization`; the remote signer sends
 * `-remoteSignerWebhookHeaders 'Authorization:Bearer <secret>'`; `-authWebhookUrl` sends no
 * headers, so the secret goes in its URL as `?secret=<secret>` (README, Front door).
 */
function webhookAuth(secret: string | null): Middleware {
  const expected = secret === null ? null : Buffer.from(secret);
  return async function webhookAuth(ctx, next) {
    if (expected === null) {
      throw new ServiceUnavailable(
        'go-livepeer webhooks are off (LIVEPEER_WEBHOOK_SECRET is unset)',
      );
    }
    const candidates = [
      bearerCredential(ctx.get('authorization') || undefined),
      ctx.get('authorization') || null,
      ctx.get('x-api-key') || null,
      typeof ctx.query.secret === 'string' ? ctx.query.secret : null,
    ];
    const ok = candidates.some((c) => {
      if (c === null) return false;
      const given = Buffer.from(c);
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
    if (!ok) throw new Unauthorized('Invalid webhook secret');
    await next();
  };
}
