// One request's exchange with go-livepeer: the headers passed on (and those never passed on),
// the response streamed straight back to the client, and upstream failures mapped to 502/504.
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Context } from 'koa';
import { errors as undiciErrors } from 'undici';
import type { Dispatcher, Pool } from 'undici';
import type { RequestState } from '../platform/http.ts';
import { BadGateway, GatewayTimeout } from './errors.ts';
import { createResponseMeter } from './response-meter.ts';
import type { ResponseFacts, ResponseMeter, Sniff } from './response-meter.ts';

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

/**
 * One exchange with go-livepeer, as an undici dispatch handler: the response goes straight
 * from undici's socket to the client's — status and headers with one `writeHead`, each body
 * chunk with one `write` — with no response stream, no Koa response pipeline and no
 * AbortController in between (each of them measurable per request). Backpressure: undici
 * pauses reading from go-livepeer while the client's socket is full.
 */
export class Exchange implements Dispatcher.DispatchHandler {
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

export function forwardHeaders(ctx: Context, trustProxy: boolean): IncomingHttpHeaders {
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

export function upstreamError(error: unknown): {
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
