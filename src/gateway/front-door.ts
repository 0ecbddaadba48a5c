// The front door: for every go-livepeer AI path, one request goes through these named steps —
// match the pipeline → authenticate → limit → read what the request costs → ask billing whether
// the principal may spend → meter (one usage event when the exchange ends) → forward to
// go-livepeer and stream the answer back. Refusals (401/403/413/429/402) happen before anything
// is forwarded and are not metered: they cost nothing. The steps are plain calls in `answer`,
// not a middleware chain: each chained step cost a promise and a bound `next` per request, on
// the path whose CPU per request is measured against a bare proxy (issue #21).
//
// Not a `defineRoute` route: bodies (50 MB uploads, SSE) must stream, not be parsed whole.
import { Readable } from 'node:stream';
import type { Context, Middleware, Next } from 'koa';
import { Pool } from 'undici';
import type { Config } from '../config.ts';
import type { Recorder, UsageEvent } from '../metering/index.ts';
import { assertResourceAllowed, requireAuth } from '../platform/auth.ts';
import type { Authenticator, AuthState, Principal } from '../platform/auth.ts';
import { BadRequest, ServiceUnavailable } from '../platform/errors.ts';
import type { RequestState } from '../platform/http.ts';
import { createSequentialIds } from '../platform/ids.ts';
import { hasDotSegment } from '../platform/paths.ts';
import type { SpendGate } from '../platform/spend.ts';
import { Exchange, forwardHeaders, upstreamError } from './exchange.ts';
import { createLimiter, effectiveRule, rateLimitHeaders } from './limits.ts';
import type { DefaultRule, LimitSubject } from './limits.ts';
import type { LimitSettings, LimitSource, PlanLimits } from '../platform/limits.ts';
import { pipelineForPath, unitsFor } from './pipelines.ts';
import type { Pipeline } from './pipelines.ts';
import { feeFor } from './prices.ts';
import { readRequestBody } from './request-body.ts';
import type { ReadBody } from './request-body.ts';
import type { Clock } from '../platform/clock.ts';
import { systemClock } from '../platform/clock.ts';

export const USAGE_SOURCE = 'tollhouse/gateway';

export interface FrontDoorDeps {
  config: Config['gateway'];
  trustProxy: boolean;
  authenticator: Authenticator;
  recorder: Pick<Recorder, 'enqueue'>;
  spend: SpendGate;
  /** Plans' limits and keys' overrides (the settings are the defaults under them). */
  limits: LimitSource;
  /** Live replicas: each enforces 1/N of every limit (1 with GATEWAY_LIMITS_SCOPE=replica). */
  replicas: () => number;
  clock?: Clock;
}

export interface FrontDoor {
  /** Whether a method and path are the front door's (a go-livepeer AI path). */
  claims(method: string, path: string): boolean;
  /** Answers a request `claims` accepted; the app runs it outside Koa's chain (http.ts). */
  answer: Middleware;
  close(): Promise<void>;
}

/** One request on its way through the front door, filled in step by step. */
interface Passage {
  pipeline: Pipeline;
  startedAt: Date;
  /** performance.now() at the start, for the event's latency. */
  started: number;
  /** Set by authenticate. */
  principal: Principal | null;
  anonymous: boolean;
  /** Set by limit: gives the limiter's slots back (once, when the exchange is over). */
  release: () => void;
  /** Set by readRequest. */
  body: ReadBody | null;
  modelId: string | null;
  /** Set by meter: from then on the exchange's end records the event and releases. */
  exchange: Exchange | null;
  failure: { status: number; reason: string } | null;
}

interface CachedSubjects {
  plan: PlanLimits;
  override: LimitSettings | null;
  subjects: readonly LimitSubject[];
}

// 499: nginx's "client closed request" — the event's status when the caller left first.
const CLIENT_CLOSED = 499;
// Idle upstream connections are kept this long for reuse (go-livepeer's Go server keeps
// idle connections for its IdleTimeout, longer than this).
const KEEP_ALIVE_MS = 30_000;
const NOTHING = () => {};
// What requireAuth calls once the credential is accepted: the next step runs from here instead.
const ACCEPTED: Next = async () => {};

/** The fields a step after `from` relies on; a step run out of order is a programming error. */
function required<T>(value: T | null, step: string): T {
  if (value === null) throw new Error(`front door: ${step} has not run`);
  return value;
}

export function createFrontDoor(deps: FrontDoorDeps): FrontDoor {
  const { config, authenticator, recorder, spend } = deps;
  const clock = deps.clock ?? systemClock;
  const pool =
    config.url === null
      ? null
      : new Pool(config.url, {
          connectTimeout: config.connectTimeoutMs,
          headersTimeout: config.responseTimeoutMs,
          bodyTimeout: config.responseTimeoutMs,
          keepAliveTimeout: KEEP_ALIVE_MS,
        });
  const limiter = createLimiter();
  // Unique per event (ids.ts: a per-process random prefix and a counter); nothing is granted
  // by guessing one, so a counter is enough.
  const newEventId = createSequentialIds();
  const subjectsByPrincipal = new WeakMap<Principal, CachedSubjects>();
  const requireGatewayScope = requireAuth(authenticator, ['gateway']);
  const { limits: settings } = config;
  const keyDefaults: DefaultRule = {
    rate: settings.keyRate,
    burst: settings.keyBurst,
    concurrency: settings.keyConcurrency,
  };
  const accountDefaults: DefaultRule = {
    rate: settings.accountRate,
    burst: settings.accountBurst,
    concurrency: settings.accountConcurrency,
  };

  /** The path names a pipeline (a 400 for dot segments); the gateway must be configured. */
  function matchPipeline(ctx: Context): Passage | null {
    const pipeline = pipelineForPath(ctx.method, ctx.path);
    // `claims` let only pipeline paths in: nothing answers anything else (a 404).
    if (pipeline === null) return null;
    if (hasDotSegment(ctx.path)) {
      throw new BadRequest(
        'The path must not contain "." or ".." segments or percent-encoded dots or slashes',
      );
    }
    // Metrics label: the path template, not ids of streams.
    ctx._matchedRoute = pipeline.body === 'any' ? `/${pipeline.name}/*` : ctx.path;
    const passage: Passage = {
      pipeline,
      startedAt: clock(),
      started: performance.now(),
      principal: null,
      anonymous: false,
      release: NOTHING,
      body: null,
      modelId: null,
      exchange: null,
      failure: null,
    };
    if (pool === null) {
      throw new ServiceUnavailable('The gateway is not configured (GATEWAY_URL is unset)');
    }
    return passage;
  }

  /** A credential with the `gateway` scope, or, when configured, anonymous access. */
  async function authenticate(ctx: Context, passage: Passage) {
    const anonymous = config.anonymous;
    if (anonymous !== null && ctx.get('authorization') === '') {
      passage.anonymous = true;
      passage.principal = {
        via: 'api_key',
        accountId: anonymous.accountId,
        appId: null,
        keyId: null,
        clientId: null,
        endUserId: null,
        scopes: ['gateway'],
        allowedOrigins: null,
        allowedResources: null,
      };
    } else {
      await requireGatewayScope(ctx, ACCEPTED);
      passage.principal = (ctx.state as AuthState).principal;
    }
  }

  /**
   * Rate and concurrency per key and per account (per client IP when anonymous). The slots
   * are given back when the exchange ends, or by `answer` if the request is refused before.
   */
  function limit(ctx: Context, passage: Passage) {
    const admission = limiter.acquire(limitSubjects(ctx, passage), deps.replicas());
    passage.release = admission.release;
    // Set before forwarding: go-livepeer's answer is written with writeHead, which keeps them.
    if (admission.state !== null) ctx.set(rateLimitHeaders(admission.state));
  }

  function limitSubjects(ctx: Context, passage: Passage): readonly LimitSubject[] {
    const principal = required(passage.principal, 'authenticate');
    const source = deps.limits;
    if (passage.anonymous && config.anonymous !== null) {
      const anonymous = config.anonymous;
      const rule = effectiveRule(anonymous, source.planLimits(anonymous.accountId).anonymous);
      return [{ scope: 'client', key: `ip:${ctx.ip}`, rule }];
    }
    // API key principals are cached objects (keys' verifier), and plans' limits are replaced
    // only when billing reloads them: the subjects are rebuilt only when either changes.
    const plan = source.planLimits(principal.accountId);
    const override = source.keyOverride(principal);
    const cached = subjectsByPrincipal.get(principal);
    if (cached !== undefined && cached.plan === plan && cached.override === override) {
      return cached.subjects;
    }
    // An OIDC token has no key id: its client and end user stand in for one.
    const caller =
      principal.keyId ?? `token:${principal.clientId ?? ''}:${principal.endUserId ?? ''}`;
    const subjects = [
      {
        scope: 'key',
        key: `key:${principal.accountId}:${caller}`,
        rule: effectiveRule(keyDefaults, override, plan.key),
      },
      {
        scope: 'account',
        key: `acct:${principal.accountId}`,
        rule: effectiveRule(accountDefaults, plan.account),
      },
    ];
    subjectsByPrincipal.set(principal, { plan, override, subjects });
    return subjects;
  }

  /**
   * Reads what the request costs (JSON fields, or a multipart upload as it streams) and checks
   * that the credential may use the pipeline, the model and the stream it names.
   */
  async function readRequest(ctx: Context, passage: Passage) {
    const { pipeline } = passage;
    const body = await readRequestBody(ctx.req, pipeline.body, config.jsonLimitBytes);
    const modelId = typeof body.fields.model_id === 'string' ? body.fields.model_id : null;
    passage.body = body;
    passage.modelId = modelId;
    const principal = required(passage.principal, 'authenticate');
    // Most keys name no resources: no list of names is made for them.
    if (principal.allowedResources === null) return;
    const names = [pipeline.name];
    if (modelId !== null) names.push(modelId);
    const stream = streamName(ctx.path, pipeline);
    if (stream !== null) names.push(stream);
    assertResourceAllowed(principal, names);
  }

  /** Billing's gate: balance and spend caps (402). Billing's answers from memory (no await). */
  function checkSpend(passage: Passage): Promise<void> | void {
    return spend.assertMaySpend(required(passage.principal, 'authenticate'));
  }

  /**
   * From here on the request is forwarded, and exactly one usage event is recorded when the
   * exchange is over — whichever way it ends (the client's socket closes in every case).
   */
  function meter(ctx: Context, passage: Passage) {
    const { pipeline } = passage;
    const sniff =
      pipeline.name === 'llm' ? 'llm' : pipeline.name === 'audio-to-text' ? 'audio' : null;
    const exchange = new Exchange(ctx, sniff);
    passage.exchange = exchange;
    let finished = false;
    // `on` with the flag rather than `once`, which wraps the listener in one more closure per
    // request; 'close' is emitted once anyway.
    ctx.res.on('close', function recordUsage() {
      if (finished) return;
      finished = true;
      passage.release();
      const clientLeft = !ctx.res.writableFinished;
      if (clientLeft) exchange.abort();
      passage.failure ??= exchange.failure;
      // Nothing to wait for unless the recorder's buffer is full (then it resolves once there
      // is room); no promise per request otherwise.
      const waiting = recorder.enqueue(usageEvent(ctx, passage, exchange, clientLeft));
      waiting?.catch((error: unknown) => {
        (ctx.state as RequestState).log.error({ err: error }, 'usage event not recorded');
      });
    });
  }

  function usageEvent(
    ctx: Context,
    passage: Passage,
    exchange: Exchange,
    clientLeft: boolean,
  ): UsageEvent {
    const { pipeline, failure, modelId } = passage;
    const principal = required(passage.principal, 'authenticate');
    const body = required(passage.body, 'readRequest');
    const response = exchange.facts();
    const status = failure?.status ?? exchange.status ?? CLIENT_CLOSED;
    const units = unitsFor(pipeline, {
      fields: body.fields,
      image: body.image(),
      reportedAudioMs: response.audioMs,
    });
    // Charged: a 2xx go-livepeer delivered, or began to deliver before the client left (the
    // orchestrator did the work). Not charged: every failure, and a response cut off by
    // go-livepeer.
    const charged = status >= 200 && status < 300 && failure === null;
    const fee = charged ? feeFor(config.prices, pipeline.name, modelId, units ?? 0n) : 0n;
    const attributes: Record<string, unknown> = {
      request_id: (ctx.state as RequestState).requestId,
      bytes_in: body.bytesIn(),
      bytes_out: response.bytes,
    };
    if (units === null) attributes.units_unknown = true;
    // /llm is paid for max_tokens; what the model really used, for pricing on actual tokens.
    if (response.totalTokens !== null) attributes.total_tokens = Number(response.totalTokens);
    if (failure !== null) attributes.failure = failure.reason;
    if (clientLeft) attributes.client_closed = true;
    if (passage.anonymous) {
      attributes.anonymous = true;
      attributes.client_ip = ctx.ip;
    }
    return {
      source: USAGE_SOURCE,
      // Not the request id: that may come from the client (X-Request-Id), and a replayed id
      // would make metering drop the event as a duplicate.
      eventId: `gw_${newEventId()}`,
      occurredAt: passage.startedAt,
      accountId: principal.accountId,
      appId: principal.appId,
      keyId: principal.keyId,
      clientId: principal.clientId,
      endUserId: principal.endUserId,
      pipeline: pipeline.name,
      modelId,
      unit: pipeline.unit,
      quantity: units ?? 0n,
      feeWei: fee,
      status,
      latencyMs: Math.round(performance.now() - passage.started),
      attributes,
    };
  }

  /** Sends the request to go-livepeer; resolves once its answer has begun streaming back. */
  async function forward(ctx: Context, passage: Passage) {
    const body = required(passage.body, 'readRequest');
    try {
      await required(passage.exchange, 'meter').start(pool!, {
        // Rebuilt from the parsed path and query: an absolute-form target
        // (`POST http://elsewhere/llm`, RFC 9112 §3.2.2) is not passed on as the client wrote it.
        path: ctx.querystring === '' ? ctx.path : `${ctx.path}?${ctx.querystring}`,
        method: ctx.method,
        headers: forwardHeaders(ctx, deps.trustProxy),
        body:
          body.forward === null || Buffer.isBuffer(body.forward)
            ? body.forward
            : Readable.from(body.forward, { objectMode: false }),
      });
    } catch (error) {
      const mapped = upstreamError(error);
      passage.failure = { status: mapped.status, reason: mapped.reason };
      throw mapped.error;
    }
  }

  /** The steps in order; a refusal is thrown and rendered by the listener (http.ts). */
  async function answer(ctx: Context) {
    const passage = matchPipeline(ctx);
    if (passage === null) return;
    await authenticate(ctx, passage);
    limit(ctx, passage);
    try {
      await readRequest(ctx, passage);
      const spending = checkSpend(passage);
      if (spending !== undefined) await spending;
      meter(ctx, passage);
      await forward(ctx, passage);
    } catch (error) {
      // Refused before the exchange began: the limiter's slots are given back now.
      if (passage.exchange === null) passage.release();
      throw error;
    }
  }

  return {
    claims: (method, path) => pipelineForPath(method, path) !== null,
    answer: answer as Middleware,
    async close() {
      await pool?.close();
    },
  };
}

function streamName(path: string, pipeline: Pipeline): string | null {
  if (pipeline.body !== 'any') return null;
  const rest = path.split('/').filter(Boolean);
  // /live/video-to-video/{stream}/… and /process/request/{capability}
  return rest[2] ?? null;
}
