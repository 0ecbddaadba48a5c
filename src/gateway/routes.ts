// HTTP: /v1/streams (stream keys for live video) and /webhooks/livepeer/* (go-livepeer's
// stream auth, live AI auth and remote-signer auth webhooks, LIVEPEER.md §5).
import { timingSafeEqual } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Authenticator, AuthState, Principal } from '../platform/auth.ts';
import { bearerCredential, hasScope } from '../platform/auth.ts';
import type { Access } from '../platform/authz.ts';
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
  toStreamView,
} from './schemas.ts';
import type { StreamService } from './streams.ts';
import type { Clock } from '../platform/clock.ts';

export interface GatewayRoutesDeps {
  streams: StreamService;
  authenticator: Authenticator;
  spend: SpendGate;
  webhookSecret: string | null;
  /**
   * SIGNER_MAX_PRICE_PER_UNIT_WEI / SIGNER_MAX_PRICE_PIXELS_PER_UNIT: the highest orchestrator
   * price (wei per unit) a go-livepeer signer authorized by the webhook may pay; null = none.
   */
  signerMaxPrice: { pricePerUnitWei: bigint; pixelsPerUnit: bigint } | null;
  clock: Clock;
}

// go-livepeer's signer does not call the webhook again before `expiry`: one minute keeps a
// refused or revoked caller from signing for long, at one webhook call per minute per caller.
const SIGNER_AUTH_TTL_SECONDS = 60;
// go-livepeer accepts a webhook `maxPrice` only in the unit of the payment's job type (the
// state's `Type`) and answers 502 to its caller otherwise; for other types (per-pixel
// payments) none is sent and only the signer's own -maxPricePerUnit applies.
const MAX_PRICE_UNIT: Record<string, string> = {
  lv2v: '720p-pixel-seconds',
  live: 'seconds',
  fixed: 'fixed',
};
// Digits after the point of the decimal `maxPrice.price` (go-livepeer reads a decimal, not a
// fraction): the ceiling is rounded down to a multiple of 10^-18 wei.
const MAX_PRICE_DECIMALS = 18;

export function gatewayRoutes(router: Router, deps: GatewayRoutesDeps): void {
  const { streams, authenticator, spend, clock } = deps;
  // Stream keys are secrets that outlive the request that made them: a browser key (public
  // by design), a token acting for an app's end user and a token made from a key (it would
  // survive its key) cannot mint, list or revoke them.
  const manage = (ids?: Access['ids']): Access => ({
    kinds: ['operator', 'account', 'app_client'],
    scope: 'gateway',
    ...(ids === undefined ? {} : { ids }),
  });
  const principal = (ctx: AppContext) => (ctx.state as AuthState).principal;

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/streams',
      body: createStreamBody,
      response: issuedStream,
      status: 201,
      access: manage(),
    },
    async function createStream({ body, ctx }) {
      ctx.set('Cache-Control', 'no-store');
      const { stream, streamKey } = await streams.create(principal(ctx), body.name);
      return { ...toStreamView(stream), stream_key: streamKey };
    },
  );
  defineRoute(
    router,
    { method: 'get', path: '/v1/streams', response: streamList, access: manage() },
    async function listStreams({ ctx }) {
      return { streams: (await streams.list(principal(ctx))).map(toStreamView) };
    },
  );
  defineRoute(
    router,
    {
      method: 'delete',
      path: '/v1/streams/:id',
      params: streamParams,
      response: streamView,
      access: manage({
        'params.id': {
          rule: 'own_account',
          names: 'stream',
          find: async (id) => {
            const stream = await streams.byId(id);
            return stream === null ? null : { accountId: stream.accountId };
          },
        },
      }),
    },
    async function revokeStream({ params, ctx }) {
      return toStreamView(await streams.revoke(principal(ctx), params.id));
    },
  );

  const webhook = [webhookAuth(deps.webhookSecret)];
  const fromGoLivepeer: Access = {
    kinds: 'anyone',
    note: "go-livepeer's webhook: LIVEPEER_WEBHOOK_SECRET in the URL or Authorization header",
  };

  defineRoute(
    router,
    {
      method: 'post',
      path: '/webhooks/livepeer/stream-auth',
      body: streamAuthBody,
      response: streamAuthReply,
      access: fromGoLivepeer,
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
      access: fromGoLivepeer,
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
      access: fromGoLivepeer,
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
      const maxPrice = webhookMaxPrice(deps.signerMaxPrice, body.state);
      return {
        status: 200,
        auth_id: caller.keyId ?? caller.clientId ?? caller.accountId,
        expiry: Math.floor(clock().getTime() / 1000) + SIGNER_AUTH_TTL_SECONDS,
        ...(maxPrice !== null ? { maxPrice } : {}),
      };
    },
  );
}

/**
 * The webhook's `maxPrice` (LIVEPEER.md §5): go-livepeer's signer refuses (481) an
 * orchestrator whose price is above it, as with its own -maxPricePerUnit. Until billing's plans
 * define per-account ceilings, it is the operator's SIGNER_MAX_PRICE_* setting.
 */
export function webhookMaxPrice(
  ceiling: { pricePerUnitWei: bigint; pixelsPerUnit: bigint } | null,
  state: unknown,
): { price: string; currency: 'wei'; unit: string } | null {
  if (ceiling === null || ceiling.pricePerUnitWei <= 0n || ceiling.pixelsPerUnit <= 0n) return null;
  const type = (state as { Type?: unknown } | null | undefined)?.Type;
  const unit =
    typeof type === 'string' && Object.hasOwn(MAX_PRICE_UNIT, type)
      ? MAX_PRICE_UNIT[type]
      : undefined;
  if (unit === undefined) return null;
  return {
    price: decimalDown(ceiling.pricePerUnitWei, ceiling.pixelsPerUnit),
    currency: 'wei',
    unit,
  };
}

/** num/den as a decimal string rounded down to MAX_PRICE_DECIMALS digits (never below 10^-18). */
function decimalDown(num: bigint, den: bigint): string {
  const scale = 10n ** BigInt(MAX_PRICE_DECIMALS);
  // go-livepeer requires a positive price: a ceiling below 10^-18 wei per unit becomes that.
  const scaled = (num * scale) / den || 1n;
  const whole = scaled / scale;
  const fraction = (scaled % scale).toString().padStart(MAX_PRICE_DECIMALS, '0').replace(/0+$/, '');
  return fraction === '' ? whole.toString() : `${whole}.${fraction}`;
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
