// The front door: for every go-livepeer AI path, authenticate → limit → read what the request
// costs → ask billing whether the principal may spend → stream it to go-livepeer and back →
// record one usage event. Refusals (401/403/413/429/402) happen before anything is forwarded
// and are not metered: they cost nothing.
//
// Not a `defineRoute` route: bodies (50 MB uploads, SSE) must stream, not be parsed whole.
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Context, Middleware, Next } from 'koa';
import { Pool, errors as undiciErrors } from 'undici';
import type { Dispatcher } from 'undici';
import type { Config } from '../config.ts';
import type { Recorder, UsageEvent } from '../metering/index.ts';
import { assertResourceAllowed, requireAuth } from '../platform/auth.ts';
import type { Authenticator, AuthState, Principal } from '../platform/auth.ts';
import { BadRequest, ServiceUnavailable } from '../platform/errors.ts';
import type { RequestState } from '../platform/http.ts';
import { hasDotSegment } from '../platform/paths.ts';
import type { SpendGate } from '../platform/spend.ts';
import { BadGateway, GatewayTimeout } from './errors.ts';
import { createLimiter } from './limits.ts';
import type { LimitSubject } from './limits.ts';
import { pipelineForPath, unitsFor } from './pipelines.ts';
import type { Pipeline } from './pipelines.ts';
import { feeFor } from './prices.ts';
import { readRequestBody } from './request-body.ts';
import type { ReadBody } from './request-body.ts';
import { createResponseMeter } from './response-meter.ts';
import type { ResponseFacts, ResponseMeter, Sniff } from './response-meter.ts';
import type { Clock } from '../platform/clock.ts';
import { systemClock } from '../platform/clock.ts';

export const USAGE_SOURCE = 'tollhouse/gateway';

export interface FrontDoorDeps {
  config: Config['gateway'];
  trustProxy: boolean;
  authenticator: Authenticator;
  recorder: Pick<Recorder, 'enqueue'>;
  spend: SpendGate;
  clock?: Clock;
}

export interface FrontDoor {
  /** Whether a method and path are the front door's (a go-livepeer AI path). */
  claims(method: string, path: string): boolean;
  /** Answers a request `claims` accepted; the app runs it outside Koa's chain (http.ts). */
  answer: Middleware;
  close(): Promise<void>;
}

// RFC 9110 §7.6.1 connection-specific fields, plus those a proxy must never pass on:
// the client's credentials (go-livepeer must not see tollhouse keys) and `expect` (undici
// does not do 100-continue; the body is sent straight away).
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'expect',
]);
const CREDENTIALS = new Set(['authorization', 'cookie', 'x-api-key']);
// What tollhouse tells go-livepeer about the request, set below from what it knows, never
// taken from the client: the X-Forwarded-* trio and RFC 7239's `Forwarded`, which says the
// same thing. X-Tollhouse-* names (tested by prefix) are tollhouse's own: a client sending
// `X-Tollhouse-Account` must not look authenticated to anything behind the gateway.
const FORWARDED = new Set([
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
]);
const OWN_PREFIX = 'x-tollhouse-';
// 499: nginx's "client closed request" — the event's status when the caller left first.
const CLIENT_CLOSED = 499;
// Idle upstream connections are kept this long for reuse (go-livepeer's Go server keeps
// idle connections for its IdleTimeout, longer than this).
const KEEP_ALIVE_MS = 30_000;

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
  const subjectsByPrincipal = new WeakMap<Principal, readonly LimitSubject[]>();
  const authenticate = requireAuth(authenticator, ['gateway']);
  const keyRule = { rate: config.limits.keyRate, concurrency: config.limits.keyConcurrency };
  const accountRule = {
    rate: config.limits.accountRate,
    concurrency: config.limits.accountConcurrency,
  };

  async function principalFor(ctx: Context): Promise<{ principal: Principal; anonymous: boolean }> {
    const anonymous = config.anonymous;
    if (anonymous !== null && ctx.get('authorization') === '') {
      return {
        anonymous: true,
        principal: {
          via: 'api_key',
          accountId: anonymous.accountId,
          appId: null,
          keyId: null,
          clientId: null,
          endUserId: null,
          scopes: ['gateway'],
          allowedOrigins: null,
          allowedResources: null,
        },
      };
    }
    await authenticate(ctx, async () => {});
    return { principal: (ctx.state as AuthState).principal, anonymous: false };
  }

  function limitSubjects(
    ctx: Context,
    principal: Principal,
    anonymous: boolean,
  ): readonly LimitSubject[] {
    if (anonymous && config.anonymous !== null) {
      const rule = { rate: config.anonymous.rate, concurrency: config.anonymous.concurrency };
      return [{ scope: 'client', key: `ip:${ctx.ip}`, rule }];
    }
    // API key principals are cached objects (keys' verifier): their subjects are built once.
    let subjects = subjectsByPrincipal.get(principal);
    if (subjects === undefined) {
      // An OIDC token has no key id: its client and end user stand in for one.
      const caller =
        principal.keyId ?? `token:${principal.clientId ?? ''}:${principal.endUserId ?? ''}`;
      subjects = [
        { scope: 'key', key: `key:${principal.accountId}:${caller}`, rule: keyRule },
        { scope: 'account', key: `acct:${principal.accountId}`, rule: accountRule },
      ];
      subjectsByPrincipal.set(principal, subjects);
    }
    return subjects;
  }

  async function frontDoor(ctx: Context, next: Next) {
    const pipeline = pipelineForPath(ctx.method, ctx.path);
    if (pipeline === null) return next();
    if (hasDotSegment(ctx.path)) {
      throw new BadRequest(
        'The path must not contain "." or ".." segments or percent-encoded dots or slashes',
      );
    }
    // Metrics label: the path template, not ids of streams.
    ctx._matchedRoute = pipeline.body === 'any' ? `/${pipeline.name}/*` : ctx.path;
    const startedAt = clock();
    const started = performance.now();
    if (pool === null) {
      throw new ServiceUnavailable('The gateway is not configured (GATEWAY_URL is unset)');
    }
    const { principal, anonymous } = await principalFor(ctx);
    const release = limiter.acquire(limitSubjects(ctx, principal, anonymous));
    let body: ReadBody;
    let modelId: string | null;
    try {
      body = await readRequestBody(ctx.req, pipeline.body, config.jsonLimitBytes);
      modelId = typeof body.fields.model_id === 'string' ? body.fields.model_id : null;
      const names = [pipeline.name];
      if (modelId !== null) names.push(modelId);
      const stream = streamName(ctx.path, pipeline);
      if (stream !== null) names.push(stream);
      assertResourceAllowed(principal, names);
      await spend.assertMaySpend(principal);
    } catch (error) {
      release();
      throw error;
    }

    // From here on the request is forwarded, and exactly one usage event is recorded when the
    // exchange is over — whichever way it ends.
    const res = ctx.res;
    const sniff =
      pipeline.name === 'llm' ? 'llm' : pipeline.name === 'audio-to-text' ? 'audio' : null;
    const exchange = new Exchange(ctx, sniff);
    let failure: { status: number; reason: string } | null = null;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      release();
      const clientLeft = !res.writableFinished;
      if (clientLeft) exchange.abort();
      failure ??= exchange.failure;
      const response = exchange.facts();
      const status = failure?.status ?? exchange.status ?? CLIENT_CLOSED;
      const facts = {
        fields: body.fields,
        image: body.image(),
        reportedAudioMs: response.audioMs,
      };
      const units = unitsFor(pipeline, facts);
      // Charged: a 2xx go-livepeer delivered, or began to deliver before the client left
      // (the orchestrator did the work). Not charged: every failure, and a response cut off
      // by go-livepeer.
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
      if (anonymous) {
        attributes.anonymous = true;
        attributes.client_ip = ctx.ip;
      }
      const event: UsageEvent = {
        source: USAGE_SOURCE,
        // Not the request id: that may come from the client (X-Request-Id), and a replayed id
        // would make metering drop the event as a duplicate.
        eventId: `gw_${randomUUID()}`,
        occurredAt: startedAt,
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
        latencyMs: Math.round(performance.now() - started),
        attributes,
      };
      recorder.enqueue(event).catch((error: unknown) => {
        (ctx.state as RequestState).log.error({ err: error }, 'usage event not recorded');
      });
    };
    res.once('close', finish);

    try {
      await exchange.start(pool, {
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
      failure = { status: mapped.status, reason: mapped.reason };
      throw mapped.error;
    }
  }

  return {
    claims: (method, path) => pipelineForPath(method, path) !== null,
    answer: frontDoor,
    async close() {
      await pool?.close();
    },
  };
}

/**
 * One exchange with go-livepeer, as an undici dispatch handler: the response goes straight
 * from undici's socket to the client's — status and headers with one `writeHead`, each body
 * chunk with one `write` — with no response stream, no Koa response pipeline and no
 * AbortController in between (each of them measurable per request). Backpressure: undici
 * pauses reading from go-livepeer while the client's socket is full.
 */
class Exchange implements Dispatcher.DispatchHandler {
  status: number | null = null;
  failure: { status: number; reason: string } | null = null;
  private readonly ctx: Context;
  private readonly res: ServerResponse;
  private readonly sniff: Sniff;
  private meter: ResponseMeter | null = null;
  private bytes = 0;
  private controller: Dispatcher.DispatchController | null = null;
  private aborted = false;
  private settle: { resolve: () => void; reject: (error: Error) => void } | null = null;
  private resume: (() => void) | null = null;

  constructor(ctx: Context, sniff: Sniff) {
    this.ctx = ctx;
    this.res = ctx.res;
    this.sniff = sniff;
  }

  /** Sends the request; resolves once the response has begun, rejects if it never does. */
  start(pool: Pool, options: Dispatcher.DispatchOptions): Promise<void> {
    return new Promise((resolve, reject) => {
      this.settle = { resolve, reject };
      pool.dispatch(options, this);
    });
  }

  /** The client left: stop the upstream request (now, or as soon as it is dispatched). */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.controller?.abort(new undiciErrors.RequestAbortedError('The client closed the request'));
  }

  facts(): ResponseFacts {
    return this.meter?.facts() ?? { bytes: this.bytes, totalTokens: null, audioMs: null };
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.aborted) {
      controller.abort(new undiciErrors.RequestAbortedError('The client closed the request'));
    }
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode < 200) return; // 1xx: go-livepeer's final answer follows.
    const out: Record<string, string | string[]> = {};
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined || HOP_BY_HOP.has(name) || name === 'x-request-id') continue;
      out[name] = value;
    }
    if (this.sniff !== null) {
      const type = headers['content-type'];
      this.meter = createResponseMeter(this.sniff, typeof type === 'string' ? type : '');
    }
    // The answer is written here, outside Koa's response handling; the request's metrics and
    // log line still see the status through ctx.res. Should writeHead refuse a header, undici
    // reports it through onResponseError and the 502 is rendered like any error.
    if (!this.res.destroyed) this.res.writeHead(statusCode, out);
    this.status = statusCode;
    this.ctx.respond = false;
    this.settle?.resolve();
    this.settle = null;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    // The client is gone (the upstream request is being aborted): nothing to deliver.
    if (this.res.destroyed) return;
    if (this.meter !== null) this.meter.write(chunk);
    else this.bytes += chunk.length;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.resume ??= () => controller.resume();
      this.res.once('drain', this.resume);
    }
  }

  onResponseEnd(): void {
    this.meter?.end();
    this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.settle !== null) {
      // No answer yet: the caller maps the error to 502/504 and Koa renders it.
      this.settle.reject(error);
      this.settle = null;
      return;
    }
    // A response go-livepeer broke off (reset, body timeout) is a failure, not a sale; the
    // client's own departure is not.
    if (!this.aborted) this.failure = { status: 502, reason: upstreamError(error).reason };
    this.res.destroy();
  }
}

function streamName(path: string, pipeline: Pipeline): string | null {
  if (pipeline.body !== 'any') return null;
  const rest = path.split('/').filter(Boolean);
  // /live/video-to-video/{stream}/… and /process/request/{capability}
  return rest[2] ?? null;
}

function forwardHeaders(ctx: Context, trustProxy: boolean): IncomingHttpHeaders {
  const incoming = ctx.req.headers;
  // Fields the client named in `Connection` are hop-by-hop too (RFC 9110 §7.6.1); the usual
  // `keep-alive`/`close` alone needs no parsing.
  const connection = incoming.connection;
  const named =
    connection === undefined || connection === 'keep-alive' || connection === 'close'
      ? null
      : new Set(
          connection
            .split(',')
            .map((n) => n.trim().toLowerCase())
            .filter(Boolean),
        );
  const out: IncomingHttpHeaders = {};
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(name) || CREDENTIALS.has(name) || FORWARDED.has(name)) continue;
    if (name.startsWith(OWN_PREFIX)) continue;
    if (named !== null && named.has(name)) continue;
    out[name] = value;
  }
  // A JSON body is sent as the buffer that was read; undici sets its length.
  if (
    typeof incoming['content-length'] === 'string' &&
    incoming['transfer-encoding'] !== undefined
  ) {
    delete out['content-length'];
  }
  const peer = ctx.req.socket.remoteAddress ?? '';
  const prior = trustProxy ? incoming['x-forwarded-for'] : undefined;
  out['x-forwarded-for'] = prior ? `${String(prior)}, ${peer}` : peer;
  out['x-forwarded-proto'] = ctx.protocol;
  out['x-forwarded-host'] = ctx.host;
  out['x-request-id'] = (ctx.state as RequestState).requestId;
  return out;
}

function upstreamError(error: unknown): {
  status: number;
  reason: string;
  error: BadGateway | GatewayTimeout;
} {
  if (
    error instanceof undiciErrors.ConnectTimeoutError ||
    error instanceof undiciErrors.HeadersTimeoutError ||
    error instanceof undiciErrors.BodyTimeoutError
  ) {
    return {
      status: 504,
      reason: (error as { code?: string }).code ?? 'timeout',
      error: new GatewayTimeout('The gateway did not answer in time', { cause: error }),
    };
  }
  const code = (error as { code?: string } | null)?.code ?? 'error';
  return {
    status: 502,
    reason: code,
    error: new BadGateway('The gateway could not be reached', { cause: error }),
  };
}
