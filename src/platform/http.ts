// HTTP plumbing: the Koa application with request ids, per-request loggers, metrics, and the
// one place where errors become responses; plus `defineRoute`, the guard every REST route goes
// through so handlers only see validated input and responses cannot leak undeclared fields.
import type { IncomingMessage, ServerResponse } from 'node:http';
import Router from '@koa/router';
import coBody from 'co-body';
import Koa from 'koa';
import type { Context, Middleware, Next } from 'koa';
import compose from 'koa-compose';
import type { z } from 'zod';
import {
  AppError,
  BadRequest,
  InvalidRequest,
  MethodNotAllowed,
  NotFound,
  PayloadTooLarge,
  ServiceUnavailable,
  UnsupportedMediaType,
} from './errors.ts';
import { isDatabaseUnavailable } from './db-errors.ts';
import type { AuthState } from './auth.ts';
import { assertOwnership, declare } from './authz.ts';
import type { Access } from './authz.ts';
import { createSequentialIds } from './ids.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { RequestState } from './request-state.ts';
import { assertCleanStrings, isCleanPath } from './strings.ts';

export { Router };

/** Per-request state every middleware may read. */
// In its own file so that auth.ts and authz.ts, which http.ts imports, need not import http.ts.
export type { RequestState };

export type AppContext = Context & { state: RequestState };

/** Shared with the server: once shutting down, readiness fails and connections are not kept. */
export interface Lifecycle {
  shuttingDown: boolean;
}

export interface HttpOptions {
  log: Logger;
  metrics: Metrics;
  lifecycle: Lifecycle;
  trustProxy: boolean;
  bodyLimitBytes: number;
  /**
   * Paths whose routes render errors in a protocol's own shape (go-livepeer's remote signer):
   * the string rule runs inside those routes (`assertCleanInput`) instead of before routing,
   * so its refusal comes out in their shape too.
   */
  ownErrorShape?: (path: string) => boolean;
}

// Request ids from clients or proxies are echoed and logged, so only accept a safe alphabet
// and length (uuids, ULIDs, AWS/GCP trace ids all fit).
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export interface Http {
  /** The Koa application: every route and middleware except the direct route's answer. */
  koa: Koa;
  /**
   * The Node request listener (call once every middleware is in place): fixed answers are sent
   * before anything else, requests the direct route claims are answered outside Koa's
   * middleware chain, all others go through Koa.
   */
  listener(direct: DirectRoute, fixed?: readonly FixedAnswer[]): RequestListener;
}

/**
 * A route whose answer never varies (`GET /healthz`), sent straight from the Node listener
 * before any Koa context exists: through Koa's chain the base request path cost 3–4× a bare
 * `node:http` handler (BENCHMARKS.md, gateway), for a constant body. The route stays declared
 * on the router (authz matrix, OpenAPI, HEAD, OPTIONS, 405); only its plain form is answered
 * here — this method, exactly this path, no query string, no `Origin` (CORS for browser keys
 * applies to those) — with what the chain would add: the request id, the
 * `http_request_duration_seconds` sample, the request log line and the shutdown
 * `Connection: close`. Everything else about the path goes through Koa as before.
 */
export interface FixedAnswer {
  method: 'GET';
  path: string;
  status: number;
  /** Sent as JSON, as the route declared on the router sends it. */
  body: unknown;
}

/**
 * A route answered outside Koa's middleware chain (the front door: issue #6, where Koa's
 * dispatch and the generic middlewares were ~10 % of the CPU per proxied request). It gets
 * exactly what the chain would give it — a Koa context, the request id and logger in
 * ctx.state, metrics, error rendering, the shutdown `Connection: close`, the request log line
 * — through the same functions the middlewares below call. Only Koa's dispatch is skipped.
 */
export interface DirectRoute {
  /** Whether the route answers this method and path (as Koa parses them). */
  claims(method: string, path: string): boolean;
  /** The middlewares that precede the route in the chain and apply to it (CORS), in order. */
  before: Middleware[];
  /** The route itself; it must answer (or throw), never leave the request to `next`. */
  answer: Middleware;
}

/** Returns nothing when the answer was sent at once (a fixed answer): no promise is made. */
export type RequestListener = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

interface PreparedAnswer {
  method: string;
  path: string;
  status: number;
  json: Buffer;
  length: string;
  sample: { observe(seconds: number): void };
}

// What Koa sends for a JSON body (koa/lib/response.js), so both paths answer alike.
const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
// A restart or fail-over of PostgreSQL takes seconds; clients retry after this.
const DATABASE_RETRY_AFTER_SECONDS = 2;

/**
 * Several direct routes as one (the front door's pipelines and the signer's payments): the
 * first that claims a request answers it; null entries (a disabled capability) are skipped.
 */
export function anyOf(
  routes: ReadonlyArray<Pick<DirectRoute, 'claims' | 'answer'> | null>,
): Pick<DirectRoute, 'claims' | 'answer'> {
  const present = routes.filter((r) => r !== null);
  const find = (method: string, path: string) => present.find((r) => r.claims(method, path));
  return {
    claims: (method, path) => find(method, path) !== undefined,
    answer(ctx, next) {
      const route = find(ctx.method, ctx.path);
      if (route === undefined) throw new NotFound(`No route for ${ctx.method} ${ctx.path}`);
      return route.answer(ctx, next);
    },
  };
}

export function createHttp(options: HttpOptions): Http {
  const { log, metrics, lifecycle, trustProxy, bodyLimitBytes, ownErrorShape } = options;
  const koa = new Koa({ proxy: trustProxy });
  // Generated request ids: per-process prefix and counter (ids.ts), not a UUID each time.
  const newRequestId = createSequentialIds();
  // Koa would print errors to stderr itself; the error middleware below logs them instead.
  koa.silent = true;
  koa.use(requestContext(log, lifecycle, bodyLimitBytes, newRequestId));
  koa.use(measure(metrics));
  koa.use(renderErrors());
  koa.use(cleanInput(ownErrorShape ?? (() => false)));
  return {
    koa,
    listener(direct, fixed = []) {
      const viaKoa = koa.callback();
      const answers = new Map<string, PreparedAnswer>();
      for (const answer of fixed) {
        const json = Buffer.from(JSON.stringify(answer.body));
        answers.set(answer.path, {
          method: answer.method,
          path: answer.path,
          status: answer.status,
          json,
          length: String(json.length),
          // The label set's series, looked up once.
          sample: metrics.httpRequestDuration.labels(answer.method, answer.path, answer.status),
        });
      }
      /** A FixedAnswer: the headers Koa would send, in one writeHead. */
      function answerFixed(
        answer: PreparedAnswer,
        incoming: string | undefined,
        req: IncomingMessage,
        res: ServerResponse,
      ) {
        const started = performance.now();
        const requestId =
          incoming !== undefined && REQUEST_ID.test(incoming) ? incoming : newRequestId();
        const headers: Record<string, string> = {
          'X-Request-Id': requestId,
          'Content-Type': JSON_CONTENT_TYPE,
          'Content-Length': answer.length,
        };
        if (lifecycle.shuttingDown) headers.Connection = 'close';
        res.writeHead(answer.status, headers);
        res.end(answer.json);
        const elapsedMs = performance.now() - started;
        answer.sample.observe(elapsedMs / 1e3);
        if (log.isLevelEnabled('info')) {
          // The same line as endRequest's; the client address as Koa reads it (TRUST_PROXY).
          const ip = koa.createContext(req, res).ip;
          log.child({ requestId }).info(
            {
              req: { method: answer.method, path: answer.path, ip },
              res: { status: answer.status },
              durationMs: Math.round(elapsedMs * 1e3) / 1e3,
            },
            'request',
          );
        }
      }
      const chain = compose([...direct.before, direct.answer]);
      // The same three steps as requestContext → measure → renderErrors → Koa's respond, in
      // the same order, as plain calls.
      async function answerDirect(ctx: Context) {
        // Koa starts every request as a 404 (handleRequest): an unanswered request stays one.
        ctx.res.statusCode = 404;
        const started = process.hrtime.bigint();
        const state = beginRequest(ctx, log, bodyLimitBytes, newRequestId);
        try {
          await chain(ctx);
          assertAnswered(ctx);
        } catch (thrown) {
          renderError(ctx, thrown);
        }
        observeDuration(metrics, ctx, started);
        endRequest(ctx, state, started, log, lifecycle);
        respondDirect(ctx);
      }
      async function answerDirectSafely(ctx: Context) {
        try {
          await answerDirect(ctx);
        } catch (error) {
          // Unreachable unless rendering itself failed: nothing sensible can be sent.
          log.error({ err: error }, 'request failed');
          ctx.res.destroy();
        }
      }
      return function listener(req, res) {
        const url = req.url ?? '';
        if (answers.size > 0) {
          // Keyed by the raw target: `/healthz?x` or `http://host/healthz` are not the plain
          // form and go through Koa, which parses them.
          const answer = answers.get(url);
          if (answer !== undefined && req.method === answer.method) {
            const fixed = fixedAnswerHeaders(req.rawHeaders);
            if (fixed !== null) {
              answerFixed(answer, fixed.requestId, req, res);
              return;
            }
          }
        }
        // A context costs a few objects, and Koa makes its own for the requests it answers: the
        // usual target's path is read without one.
        const path = plainPath(url);
        if (path !== null && !direct.claims(req.method ?? '', path)) return viaKoa(req, res);
        const ctx = koa.createContext(req, res);
        if (path === null && !direct.claims(ctx.method, ctx.path)) return viaKoa(req, res);
        return answerDirectSafely(ctx);
      };
    },
  };
}

// Shared: what fixedAnswerHeaders finds is read at once and never kept.
const NO_REQUEST_ID: { requestId: string | undefined } = { requestId: undefined };

/**
 * For a fixed answer, what it needs of the request's headers, read from `rawHeaders`: Node
 * builds `req.headers` on first use, an object a bare handler never makes. The request id
 * when there is exactly one (Node joins repeated ones with ", ", which the id rule refuses),
 * or null when an `Origin` is present (CORS applies: Koa answers).
 */
function fixedAnswerHeaders(raw: readonly string[]): { requestId: string | undefined } | null {
  let requestId: string | undefined;
  let repeated = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 6 && name.toLowerCase() === 'origin') return null;
    if (name.length === 12 && name.toLowerCase() === 'x-request-id') {
      repeated = requestId !== undefined;
      requestId = raw[i + 1];
    }
  }
  if (requestId === undefined || repeated) return NO_REQUEST_ID;
  return { requestId };
}

/**
 * The path of an origin-form target (`/a/b?c`) as Koa's `ctx.path` reads it (parseurl's fast
 * path: the part before `?`), or null for anything parseurl hands to the full URL parser
 * (absolute form, `#`, whitespace), which then goes through a Koa context.
 */
function plainPath(url: string): string | null {
  if (url.charCodeAt(0) !== 0x2f) return null;
  let end = url.length;
  for (let i = 1; i < url.length; i++) {
    const code = url.charCodeAt(i);
    if (code === 0x3f) {
      if (end === url.length) end = i;
    } else if (
      code === 0x09 ||
      code === 0x0a ||
      code === 0x0c ||
      code === 0x0d ||
      code === 0x20 ||
      code === 0x23 ||
      code === 0xa0 ||
      code === 0xfeff
    ) {
      return null;
    }
  }
  return end === url.length ? url : url.slice(0, end);
}

function requestContext(
  log: Logger,
  lifecycle: Lifecycle,
  bodyLimitBytes: number,
  newRequestId: () => string,
): Middleware {
  return async function requestContext(ctx: Context, next: Next) {
    const started = process.hrtime.bigint();
    const state = beginRequest(ctx, log, bodyLimitBytes, newRequestId);
    try {
      await next();
    } finally {
      endRequest(ctx, state, started, log, lifecycle);
    }
  };
}

/** The request id (the caller's, if acceptable) and ctx.state; echoes the id. */
function beginRequest(
  ctx: Context,
  log: Logger,
  bodyLimitBytes: number,
  newRequestId: () => string,
): RequestState {
  // Straight from Node's objects: Koa's ctx.get/ctx.set go through three getters each.
  const incoming = ctx.req.headers['x-request-id'];
  const requestId =
    typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : newRequestId();
  const state = new RequestStateImpl(log, requestId, bodyLimitBytes);
  ctx.state = Object.assign(state, ctx.state);
  ctx.res.setHeader('X-Request-Id', requestId);
  return state;
}

/** Once the answer is decided: the shutdown `Connection: close` and the request log line. */
function endRequest(
  ctx: Context,
  state: RequestState,
  started: bigint,
  log: Logger,
  lifecycle: Lifecycle,
): void {
  // Checked when the response is ready, so a request that began before shutdown also
  // tells its client not to reuse the connection.
  if (lifecycle.shuttingDown && !ctx.headerSent) ctx.set('Connection', 'close');
  const level = ctx.status >= 500 ? 'error' : 'info';
  // With the level off (benchmarks, LOG_LEVEL=warn) no line is built and no child logger
  // is made: per-request work that nobody reads.
  if (log.isLevelEnabled(level)) {
    const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
    // The query string is not logged: OAuth codes and tokens travel there.
    const line = {
      req: { method: ctx.method, path: ctx.path, ip: ctx.ip },
      res: { status: ctx.status },
      durationMs: Math.round(durationMs * 1000) / 1000,
    };
    if (level === 'error') state.log.error(line, 'request failed');
    else state.log.info(line, 'request');
  }
}

/** ctx.state: the request logger (with the request id bound) is made on first use. */
class RequestStateImpl implements RequestState {
  readonly requestId: string;
  readonly bodyLimitBytes: number;
  #root: Logger;
  #log: Logger | null = null;
  constructor(root: Logger, requestId: string, bodyLimitBytes: number) {
    this.#root = root;
    this.requestId = requestId;
    this.bodyLimitBytes = bodyLimitBytes;
  }
  get log(): Logger {
    return (this.#log ??= this.#root.child({ requestId: this.requestId }));
  }
}

function measure(metrics: Metrics): Middleware {
  return async function measure(ctx: Context, next: Next) {
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      observeDuration(metrics, ctx, started);
    }
  };
}

function observeDuration(metrics: Metrics, ctx: Context, started: bigint): void {
  // The route template, not the path: ids in paths would make unbounded label sets.
  const route = typeof ctx._matchedRoute === 'string' ? ctx._matchedRoute : 'unmatched';
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  metrics.httpRequestDuration.observe(ctx.method, route, ctx.status, seconds);
}

/** The one place errors are turned into `{"error": code, "message": …}` responses. */
function renderErrors(): Middleware {
  return async function renderErrors(ctx: Context, next: Next) {
    try {
      await next();
      assertAnswered(ctx);
    } catch (thrown) {
      renderError(ctx, thrown);
    }
  };
}

/**
 * The string rule (strings.ts) for the path and query of every request Koa serves — REST,
 * OIDC, sign-in pages and console alike — before any route can look an id up with them.
 */
function cleanInput(ownErrorShape: (path: string) => boolean): Middleware {
  return async function cleanInput(ctx: Context, next: Next) {
    if (!ownErrorShape(ctx.path)) assertCleanInput(ctx);
    await next();
  };
}

/** The string rule for a request's path and query (400 InvalidRequest when broken). */
export function assertCleanInput(ctx: Context): void {
  if (!isCleanPath(ctx.path)) {
    throw new InvalidRequest(
      'path: text must not contain NUL characters or unpaired UTF-16 surrogates',
    );
  }
  if (ctx.querystring !== '') assertCleanStrings('query', ctx.query);
}

/** A request nothing answered is a 404 in the same JSON shape as every other error. */
function assertAnswered(ctx: Context): void {
  // ctx.respond === false: the middleware answered on ctx.res itself (the front door
  // passes go-livepeer's 404s through that way).
  if (ctx.status === 404 && ctx.body == null && ctx.respond !== false) {
    throw new NotFound(`No route for ${ctx.method} ${ctx.path}`);
  }
}

function renderError(ctx: Context, thrown: unknown): void {
  const error = toAppError(thrown);
  const log = (ctx.state as RequestState).log;
  if (error.status >= 500) log.error({ err: thrown }, error.message);
  else log.info({ error: error.code, message: error.message }, 'request refused');
  ctx.status = error.status;
  for (const [name, value] of Object.entries(error.headers)) ctx.set(name, value);
  ctx.body = {
    error: error.code,
    message: error.expose
      ? error.message
      : `Something went wrong on our side. Quote request id ${(ctx.state as RequestState).requestId} when reporting it.`,
    ...(error.expose ? error.details : undefined),
  };
}

/**
 * Koa's respond step (koa/lib/application.js) for what a direct route can leave: an answer
 * already written to ctx.res (ctx.respond === false), a bodiless status (a CORS preflight's
 * 204), or the JSON body `renderError` set.
 */
function respondDirect(ctx: Context): void {
  if (ctx.respond === false) return;
  const res = ctx.res;
  if (!ctx.writable || ctx.body == null) {
    res.end();
    return;
  }
  const json = JSON.stringify(ctx.body);
  if (!res.headersSent) ctx.length = Buffer.byteLength(json);
  if (ctx.method === 'HEAD') res.end();
  else res.end(json);
}

/** Maps errors thrown by libraries (http-errors from Koa, co-body, the router) to AppErrors. */
function toAppError(thrown: unknown): AppError {
  if (thrown instanceof AppError) return thrown;
  const status = (thrown as { status?: unknown }).status;
  const type = (thrown as { type?: unknown }).type;
  if (status === 413 || type === 'entity.too.large') {
    const limit = (thrown as { limit?: number }).limit;
    return new PayloadTooLarge(`Request body is larger than ${limit ?? 'the limit of'} bytes`, {
      cause: thrown,
    });
  }
  // co-body marks JSON.parse's SyntaxError (and its own "only objects and arrays") with 400.
  if (type === 'entity.parse.failed' || (thrown instanceof SyntaxError && status === 400)) {
    return new BadRequest('Request body is not valid JSON', { cause: thrown });
  }
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return new UnsupportedMediaType('Request body encoding is not supported', { cause: thrown });
  }
  if (status === 405) return new MethodNotAllowed('Method not allowed on this path');
  if (isDatabaseUnavailable(thrown)) {
    return new ServiceUnavailable('The database is unavailable; try again shortly', {
      cause: thrown,
      headers: { 'Retry-After': String(DATABASE_RETRY_AFTER_SECONDS) },
      details: { reason: 'database_unavailable' },
    });
  }
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new AppError(status, 'BadRequest', 'The request could not be processed', {
      cause: thrown,
    });
  }
  return new AppError(500, 'InternalServerError', 'Unhandled error', { cause: thrown });
}

type Schema = z.ZodType;
type Out<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface RouteSpec<
  P extends Schema | undefined,
  Q extends Schema | undefined,
  B extends Schema | undefined,
  R extends Schema,
> {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  path: string;
  params?: P;
  query?: Q;
  body?: B;
  response: R;
  /** Success status (default 200; 201 for created, 204 renders no body). */
  status?: number;
  /** Largest accepted JSON body in bytes (default HTTP_BODY_LIMIT_BYTES). */
  bodyLimitBytes?: number;
  /** Who may call (checked before input is parsed; ids checked once it is). Required. */
  access: Access;
  /** Runs after the access check, before input parsing (further refusals). */
  before?: Middleware[];
}

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  ctx: AppContext;
  /** Answer with another status than the route's success status (e.g. 503 from /readyz). */
  setStatus(status: number): void;
}

/**
 * Registers one JSON route. Input is parsed with the declared schemas (400 `InvalidRequest`
 * listing every issue otherwise) and the result is parsed with `response`, so a field not in
 * the response schema never reaches the client.
 */
export function defineRoute<
  P extends Schema | undefined,
  Q extends Schema | undefined,
  B extends Schema | undefined,
  R extends Schema,
>(
  router: Router,
  spec: RouteSpec<P, Q, B, R>,
  handler: (input: RouteInput<Out<P>, Out<Q>, Out<B>>) => Promise<z.input<R>> | z.input<R>,
): void {
  const guard = declare(router, { method: spec.method, path: spec.path, access: spec.access });
  const route: Middleware = async function route(ctx: Context) {
    const issues: Issue[] = [];
    // Path and query were held to the string rule on the way in (cleanInput); the router's
    // decoded params and the body are held to it here, before any schema sees them.
    assertCleanStrings('params', ctx.params);
    const params = validate('params', spec.params, ctx.params, issues);
    const query = validate('query', spec.query, ctx.query, issues);
    let body: unknown;
    if (spec.body !== undefined) {
      const limit = spec.bodyLimitBytes ?? (ctx.state as RequestState).bodyLimitBytes;
      const raw = await readJson(ctx, limit);
      assertCleanStrings('body', raw);
      body = validate('body', spec.body, raw, issues);
    }
    if (issues.length > 0) {
      throw new InvalidRequest(
        issues.map((i) => `${i.location}${i.path ? `.${i.path}` : ''}: ${i.message}`).join('; '),
        { details: { issues } },
      );
    }
    const principal = (ctx.state as Partial<AuthState>).principal;
    if (principal !== undefined)
      await assertOwnership(principal, spec.access, { params, query, body });
    let status = spec.status ?? 200;
    const result = await handler({
      params: params as Out<P>,
      query: query as Out<Q>,
      body: body as Out<B>,
      ctx,
      setStatus: (next) => {
        status = next;
      },
    });
    ctx.status = status;
    if (status !== 204) ctx.body = spec.response.parse(result);
  };
  router[spec.method](spec.path, ...guard, ...(spec.before ?? []), route);
}

/**
 * Registers a route that answers by itself (streams a body, or serves text): the same access
 * declaration and check as `defineRoute`, without its JSON handling.
 */
export function guardedRoute(
  router: Router,
  spec: { method: 'get' | 'post'; path: string; access: Access },
  ...middleware: Middleware[]
): void {
  const guard = declare(router, spec);
  router[spec.method](spec.path, ...guard, ...middleware);
}

interface Issue {
  location: 'params' | 'query' | 'body';
  path: string;
  message: string;
}

function validate(
  location: Issue['location'],
  schema: Schema | undefined,
  value: unknown,
  issues: Issue[],
): unknown {
  if (schema === undefined) return undefined;
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) {
    issues.push({ location, path: issue.path.join('.'), message: issue.message });
  }
  return undefined;
}

async function readJson(ctx: Context, limitBytes: number): Promise<unknown> {
  const length = ctx.request.length;
  if (!ctx.request.type && (length === undefined || length === 0)) return undefined;
  if (!ctx.request.is('application/json', '+json')) {
    throw new UnsupportedMediaType('Send the request body as application/json');
  }
  // strict: only objects and arrays at the top level, as RFC 8259 parsers commonly expect.
  return coBody.json(ctx.req, { limit: limitBytes, strict: true });
}

/**
 * A known path with an unknown method is 405 with an `Allow` header (RFC 9110 §15.5.6), and
 * OPTIONS on a known path answers 204 with `Allow`; unknown paths fall through to the 404.
 */
export function allowedMethods(router: Router): Middleware {
  return async function allowedMethods(ctx: Context, next: Next) {
    await next();
    if (ctx.status !== 404 || ctx.body != null) return;
    const matched = router.match(ctx.path, ctx.method);
    if (matched.path.length === 0) return;
    const allowed = [...new Set(matched.path.flatMap((layer) => layer.methods))].join(', ');
    if (ctx.method === 'OPTIONS') {
      ctx.status = 204;
      ctx.set('Allow', allowed);
      return;
    }
    throw new MethodNotAllowed(`${ctx.method} is not allowed on ${ctx.path}; use ${allowed}`, {
      headers: { Allow: allowed },
    });
  };
}
