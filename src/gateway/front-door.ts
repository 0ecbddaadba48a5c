// The front door: for every go-livepeer AI path, authenticate → limit → read what the request
// costs → ask billing whether the principal may spend → stream it to go-livepeer and back →
// record one usage event. Refusals (401/403/413/429/402) happen before anything is forwarded
// and are not metered: they cost nothing.
//
// Not a `defineRoute` route: bodies (50 MB uploads, SSE) must stream, not be parsed whole.
import type { IncomingHttpHeaders } from 'node:http';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Context, Middleware, Next } from 'koa';
import { Pool, errors as undiciErrors } from 'undici';
import type { Dispatcher } from 'undici';
import type { Config } from '../config.ts';
import type { Recorder, UsageEvent } from '../metering/index.ts';
import { assertResourceAllowed, requireAuth } from '../platform/auth.ts';
import type { Authenticator, AuthState, Principal } from '../platform/auth.ts';
import { ServiceUnavailable } from '../platform/errors.ts';
import type { RequestState } from '../platform/http.ts';
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
import type { ResponseFacts } from './response-meter.ts';

export const USAGE_SOURCE = 'tollhouse/gateway';

export interface FrontDoorDeps {
  config: Config['gateway'];
  trustProxy: boolean;
  authenticator: Authenticator;
  recorder: Pick<Recorder, 'enqueue'>;
  spend: SpendGate;
  clock?: () => Date;
}

export interface FrontDoor {
  middleware: Middleware;
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
const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);
// 499: nginx's "client closed request" — the event's status when the caller left first.
const CLIENT_CLOSED = 499;
// Idle upstream connections are kept this long for reuse (go-livepeer's Go server keeps
// idle connections for its IdleTimeout, longer than this).
const KEEP_ALIVE_MS = 30_000;

export function createFrontDoor(deps: FrontDoorDeps): FrontDoor {
  const { config, authenticator, recorder, spend } = deps;
  const clock = deps.clock ?? (() => new Date());
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

  function limitSubjects(ctx: Context, principal: Principal, anonymous: boolean): LimitSubject[] {
    if (anonymous && config.anonymous !== null) {
      const rule = { rate: config.anonymous.rate, concurrency: config.anonymous.concurrency };
      return [{ scope: 'client', key: `ip:${ctx.ip}`, rule }];
    }
    // An OIDC token has no key id: its client and end user stand in for one.
    const caller =
      principal.keyId ?? `token:${principal.clientId ?? ''}:${principal.endUserId ?? ''}`;
    return [
      { scope: 'key', key: `key:${principal.accountId}:${caller}`, rule: keyRule },
      { scope: 'account', key: `acct:${principal.accountId}`, rule: accountRule },
    ];
  }

  async function frontDoor(ctx: Context, next: Next) {
    const pipeline = pipelineForPath(ctx.method, ctx.path);
    if (pipeline === null) return next();
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
    const abort = new AbortController();
    let upstreamStatus: number | null = null;
    let failure: { status: number; reason: string } | null = null;
    let meterFacts: (() => ResponseFacts) | null = null;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      release();
      const clientLeft = !ctx.res.writableFinished;
      if (clientLeft) abort.abort();
      const response = meterFacts?.() ?? null;
      const status = failure?.status ?? upstreamStatus ?? CLIENT_CLOSED;
      const facts = {
        fields: body.fields,
        image: body.image(),
        reportedTokens: response?.totalTokens ?? null,
        reportedAudioMs: response?.audioMs ?? null,
      };
      const units = unitsFor(pipeline, facts);
      // Charged: a 2xx go-livepeer delivered, or began to deliver before the client left
      // (the orchestrator did the work). Not charged: every failure, and a response cut off
      // by go-livepeer.
      const charged = status >= 200 && status < 300 && failure === null;
      const fee = charged ? feeFor(config.prices, pipeline.name, modelId, units ?? 0n) : 0n;
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
        attributes: {
          request_id: (ctx.state as RequestState).requestId,
          bytes_in: body.bytesIn(),
          bytes_out: response?.bytes ?? 0,
          ...(units === null ? { units_unknown: true } : {}),
          ...(failure !== null ? { failure: failure.reason } : {}),
          ...(clientLeft ? { client_closed: true } : {}),
          ...(anonymous ? { anonymous: true, client_ip: ctx.ip } : {}),
        },
      };
      recorder.enqueue(event).catch((error: unknown) => {
        (ctx.state as RequestState).log.error({ err: error }, 'usage event not recorded');
      });
    };
    ctx.res.once('close', finish);

    let response: Dispatcher.ResponseData;
    try {
      response = await pool.request({
        path: ctx.url,
        method: ctx.method as 'POST',
        headers: forwardHeaders(ctx, deps.trustProxy),
        body:
          body.forward === null || Buffer.isBuffer(body.forward)
            ? body.forward
            : Readable.from(body.forward, { objectMode: false }),
        signal: abort.signal,
      });
    } catch (error) {
      const mapped = upstreamError(error);
      failure = { status: mapped.status, reason: mapped.reason };
      throw mapped.error;
    }
    upstreamStatus = response.statusCode;
    ctx.status = response.statusCode;
    for (const [name, value] of Object.entries(response.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name) || name === 'x-request-id') continue;
      ctx.set(name, value);
    }
    if (ctx.method === 'HEAD' || ctx.status === 204 || ctx.status === 304) {
      await response.body.dump();
      ctx.body = null;
      return;
    }
    const upstreamBody = response.body;
    upstreamBody.on('error', (error) => {
      // A response go-livepeer broke off (reset, body timeout) is a failure, not a sale; the
      // client's own departure is not (finish() tells the two apart).
      if (!abort.signal.aborted) failure = { status: 502, reason: upstreamError(error).reason };
    });
    const sniff =
      pipeline.name === 'llm' ? 'llm' : pipeline.name === 'audio-to-text' ? 'audio' : null;
    const declaredLength = Number(response.headers['content-length'] ?? Number.NaN);
    if (sniff === null && Number.isSafeInteger(declaredLength)) {
      // The hot path: nothing to read in the body and its length is declared, so it goes to
      // Koa as it is (one stream less per request); Koa destroys it if the client leaves.
      meterFacts = () => ({
        bytes: ctx.res.writableFinished ? declaredLength : 0,
        totalTokens: null,
        audioMs: null,
      });
      ctx.body = upstreamBody;
      return;
    }
    const meter = createResponseMeter(sniff, String(response.headers['content-type'] ?? ''));
    meterFacts = meter.facts;
    // pipe, not stream.pipeline: pipeline allocates an AbortController (and a DOMException on
    // finish) per call, measurable on the hot path; errors and early closes are wired by hand.
    upstreamBody.on('error', (error) => meter.stream.destroy(error));
    meter.stream.on('close', () => {
      if (!upstreamBody.readableEnded) upstreamBody.destroy();
    });
    upstreamBody.pipe(meter.stream);
    ctx.body = meter.stream;
  }

  return {
    middleware: frontDoor,
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

function forwardHeaders(ctx: Context, trustProxy: boolean): IncomingHttpHeaders {
  const incoming = ctx.req.headers;
  const named = new Set(
    String(incoming.connection ?? '')
      .split(',')
      .map((n) => n.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(name) || CREDENTIALS.has(name) || FORWARDED.has(name) || named.has(name)) {
      continue;
    }
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
