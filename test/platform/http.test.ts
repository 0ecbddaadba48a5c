import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import pg from 'pg';
import { isDatabaseUnavailable } from '../../src/platform/db-errors.ts';
import { AppError, Conflict } from '../../src/platform/errors.ts';
import { defineRoute } from '../../src/platform/http.ts';
import { createLogger, redactSecrets } from '../../src/platform/log.ts';
import { json } from '../support/http.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';

// Log lines the app writes, parsed, so tests can check what reaches the logs.
// A generated request id: the process's random prefix and a counter (platform/ids.ts).
const GENERATED_ID = /^[0-9A-Za-z]{17}-[0-9a-z]+$/;

const lines: Array<Record<string, unknown>> = [];
const sink = new Writable({
  write(chunk: Buffer, _encoding, callback) {
    for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
    callback();
  },
});

/** A real error from node-postgres: connecting to a port nothing listens on. */
async function refusedConnectionError(): Promise<unknown> {
  const client = new pg.Client({ host: '127.0.0.1', port: 1, connectionTimeoutMillis: 2_000 });
  return client.connect().then(
    () => new Error('connected to port 1?'),
    (error: unknown) => error,
  );
}

/** A real 57P01: PostgreSQL ends the backend a query is running on (as a restart does). */
async function terminatedQueryError(url: string): Promise<unknown> {
  const victim = new pg.Client({ connectionString: url });
  const killer = new pg.Client({ connectionString: url });
  await Promise.all([victim.connect(), killer.connect()]);
  victim.on('error', () => undefined);
  const pid = (await victim.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
  const running = victim.query('select pg_sleep(30)').then(
    () => new Error('the query was not ended'),
    (error: unknown) => error,
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  await killer.query('select pg_terminate_backend($1)', [pid]);
  const error = await running;
  await killer.end();
  await victim.end().catch(() => undefined);
  return error;
}

let refused: unknown;
let t: TestApp;
beforeAll(async () => {
  refused = await refusedConnectionError();
  t = await startTestApp({
    env: { HTTP_BODY_LIMIT_BYTES: '2048' },
    log: createLogger({ level: 'info', destination: sink }),
    // Routes that exist only to exercise the plumbing every real route goes through.
    beforeStart(app) {
      defineRoute(
        app.router,
        {
          method: 'post',
          path: '/test/widgets/:id',
          params: z.object({ id: z.string().regex(/^w_\d+$/) }),
          query: z.object({ dryRun: z.enum(['true', 'false']).optional() }),
          body: z.object({ name: z.string().min(1), size: z.number().int().positive() }),
          response: z.object({ id: z.string(), name: z.string() }),
          status: 201,
          access: { kinds: 'anyone' },
        },
        ({ params, body }) => ({ id: params.id, name: body.name, internalCost: 42 }) as never,
      );
      defineRoute(
        app.router,
        {
          method: 'get',
          path: '/test/fail/:kind',
          response: z.object({}),
          access: { kinds: 'anyone' },
        },
        ({ ctx }) => {
          if (ctx.params.kind === 'conflict') throw new Conflict('Widget already exists');
          if (ctx.params.kind === 'database') throw refused;
          if (ctx.params.kind === 'headers') {
            throw new AppError(429, 'TooManyRequests', 'Slow down', {
              headers: { 'Retry-After': '3' },
            });
          }
          throw new Error('database password is hunter2');
        },
      );
    },
  });
});
afterAll(async () => {
  await t.close();
});

async function post(path: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${t.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  return { status: response.status, headers: response.headers, body: await json(response) };
}

describe('the route guard', () => {
  it('passes validated input and strips fields the response schema does not declare', async () => {
    const response = await post('/test/widgets/w_1', JSON.stringify({ name: 'a', size: 2 }));
    expect(response.status).toBe(201);
    expect(response.body).toEqual({ id: 'w_1', name: 'a' });
  });

  it('lists every invalid input at once with its location', async () => {
    const response = await post('/test/widgets/nope?dryRun=maybe', JSON.stringify({ size: -1 }));
    expect(response.status).toBe(400);
    expect(response.body.error).toBe('InvalidRequest');
    expect(
      response.body.issues.map(
        (i: { location: string; path: string }) => `${i.location}.${i.path}`,
      ),
    ).toEqual(['params.id', 'query.dryRun', 'body.name', 'body.size']);
    expect(response.body.message).toContain('body.size');
  });

  it('answers 400 for malformed JSON, 415 for another media type, 413 above the body limit', async () => {
    const malformed = await post('/test/widgets/w_1', '{"name": ');
    expect(malformed).toMatchObject({
      status: 400,
      body: { error: 'BadRequest', message: 'Request body is not valid JSON' },
    });

    const scalar = await post('/test/widgets/w_1', '"just a string"');
    expect(scalar.status).toBe(400);

    const form = await post('/test/widgets/w_1', 'name=a', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(form).toMatchObject({ status: 415, body: { error: 'UnsupportedMediaType' } });

    const huge = await post(
      '/test/widgets/w_1',
      JSON.stringify({ name: 'x'.repeat(4096), size: 1 }),
    );
    expect(huge).toMatchObject({
      status: 413,
      body: { error: 'PayloadTooLarge', message: 'Request body is larger than 2048 bytes' },
    });

    const missing = await fetch(`${t.url}/test/widgets/w_1`, { method: 'POST' });
    expect(missing.status).toBe(400);
    expect((await json(missing)).issues[0]).toMatchObject({ location: 'body' });
  });
});

describe('errors', () => {
  it('renders an AppError with its status, code and headers', async () => {
    const conflict = await fetch(`${t.url}/test/fail/conflict`);
    expect(conflict.status).toBe(409);
    expect(await json(conflict)).toEqual({ error: 'Conflict', message: 'Widget already exists' });
    const limited = await fetch(`${t.url}/test/fail/headers`);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('3');
  });

  it('answers 503 with Retry-After while PostgreSQL is unreachable, not a 500', async () => {
    const response = await fetch(`${t.url}/test/fail/database`);
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('2');
    expect(await response.json()).toEqual({
      error: 'ServiceUnavailable',
      message: 'The database is unavailable; try again shortly',
      reason: 'database_unavailable',
    });
  });

  it('tells real connection losses from failed statements', async () => {
    expect(isDatabaseUnavailable(refused)).toBe(true);
    const url = t.database.url;
    if (url !== null) {
      // On real PostgreSQL: a query whose backend is terminated, and one that is just wrong.
      expect(isDatabaseUnavailable(await terminatedQueryError(url))).toBe(true);
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      const wrong = await client.query('select * from no_such_table').catch((e: unknown) => e);
      const unique = await client
        .query('create temp table u (x int unique); insert into u values (1), (1)')
        .catch((e: unknown) => e);
      await client.end();
      expect(isDatabaseUnavailable(wrong)).toBe(false);
      expect(isDatabaseUnavailable(unique)).toBe(false);
    }
    expect(isDatabaseUnavailable(new Error('database password is hunter2'))).toBe(false);
    expect(isDatabaseUnavailable('Connection terminated')).toBe(false);
  });

  it('never shows internals in a 500, and logs them with the request id', async () => {
    const response = await fetch(`${t.url}/test/fail/boom`, {
      headers: { 'x-request-id': 'trace-500' },
    });
    expect(response.status).toBe(500);
    const body = await json(response);
    expect(body).toEqual({
      error: 'InternalServerError',
      message: 'Something went wrong on our side. Quote request id trace-500 when reporting it.',
    });
    expect(JSON.stringify(body)).not.toContain('hunter2');
    const logged = lines.find((l) => l.requestId === 'trace-500' && l.level === 'error' && l.err);
    expect(logged).toBeDefined();
  });

  it('answers unknown paths with 404 and known paths with a wrong method with 405, as JSON', async () => {
    const missing = await fetch(`${t.url}/no/such/thing?x=1`);
    expect(missing.status).toBe(404);
    expect(await json(missing)).toEqual({
      error: 'NotFound',
      message: 'No route for GET /no/such/thing',
    });
    const wrong = await fetch(`${t.url}/healthz`, { method: 'DELETE' });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('HEAD, GET');
    expect(await json(wrong)).toEqual({
      error: 'MethodNotAllowed',
      message: 'DELETE is not allowed on /healthz; use HEAD, GET',
    });
    const options = await fetch(`${t.url}/healthz`, { method: 'OPTIONS' });
    expect(options.status).toBe(204);
    expect(options.headers.get('allow')).toBe('HEAD, GET');
  });
});

describe('request ids and logs', () => {
  it('echoes a well-formed X-Request-Id and replaces a hostile one', async () => {
    const kept = await fetch(`${t.url}/healthz`, { headers: { 'x-request-id': 'abc-123.def' } });
    expect(kept.headers.get('x-request-id')).toBe('abc-123.def');
    const hostile = await fetch(`${t.url}/healthz`, {
      headers: { 'x-request-id': 'a b <script>' },
    });
    expect(hostile.headers.get('x-request-id')).toMatch(GENERATED_ID);
    const generated = await fetch(`${t.url}/healthz`);
    expect(generated.headers.get('x-request-id')).toMatch(GENERATED_ID);
  });

  it('logs one line per request without the query string or credentials', async () => {
    await fetch(`${t.url}/healthz?code=secret-oauth-code`, {
      headers: { 'x-request-id': 'log-check', authorization: 'Bearer th_sk_live_secret' },
    });
    const line = lines.find((l) => l.requestId === 'log-check' && l.msg === 'request');
    expect(line).toMatchObject({ req: { method: 'GET', path: '/healthz' }, res: { status: 200 } });
    expect(JSON.stringify(lines)).not.toContain('secret-oauth-code');
    expect(JSON.stringify(lines)).not.toContain('th_sk_live_secret');
  });

  it('redacts fields named like credentials at any depth, and keeps key identifiers', () => {
    const input = {
      headers: { authorization: 'Bearer x', cookie: 'sid=1', 'x-api-key': 'k' },
      client: { client_secret: 's', password: 'p', nested: [{ apiKey: 'a', private_key: 'b' }] },
      keyId: 'key_123',
      key_prefix: 'th_sk_ab',
      refreshToken: 't',
    };
    expect(redactSecrets(input)).toEqual({
      headers: { authorization: '[redacted]', cookie: '[redacted]', 'x-api-key': '[redacted]' },
      client: {
        client_secret: '[redacted]',
        password: '[redacted]',
        nested: [{ apiKey: '[redacted]', private_key: '[redacted]' }],
      },
      keyId: 'key_123',
      key_prefix: 'th_sk_ab',
      refreshToken: '[redacted]',
    });
    expect(input.headers.authorization).toBe('Bearer x'); // the caller's object is untouched
  });
});

describe('GET /healthz before Koa (Http.listener fixed answers)', () => {
  // The headers the app sets itself (not Date or Keep-Alive: Node's own).
  const own = (response: Response) =>
    Object.fromEntries(
      ['content-type', 'content-length', 'vary', 'connection', 'allow'].map((name) => [
        name,
        response.headers.get(name),
      ]),
    );
  const durations = async () => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    const match =
      /^http_request_duration_seconds_count\{method="GET",route="\/healthz",status="200"\} (\d+)$/m.exec(
        text,
      );
    return Number(match?.[1] ?? 0);
  };

  it('answers exactly as the route through Koa does: headers, body, log line, metric', async () => {
    const before = await durations();
    // The plain form is answered before Koa; with a query string it goes through the chain.
    const fast = await fetch(`${t.url}/healthz`, { headers: { 'x-request-id': 'fixed-fast' } });
    const viaKoa = await fetch(`${t.url}/healthz?probe=1`, {
      headers: { 'x-request-id': 'fixed-koa' },
    });
    expect(fast.status).toBe(200);
    expect(viaKoa.status).toBe(200);
    expect(own(fast)).toEqual(own(viaKoa));
    expect(own(fast)['content-type']).toBe('application/json; charset=utf-8');
    expect(fast.headers.get('x-request-id')).toBe('fixed-fast');
    expect(await fast.text()).toBe(await viaKoa.text());
    const line = (id: string) => {
      const found = lines.find((l) => l.requestId === id && l.msg === 'request');
      return { ...found, time: undefined, durationMs: typeof found?.durationMs, requestId: 0 };
    };
    expect(line('fixed-fast')).toEqual(line('fixed-koa'));
    expect(line('fixed-fast')).toMatchObject({
      req: { method: 'GET', path: '/healthz', ip: '127.0.0.1' },
      res: { status: 200 },
      durationMs: 'number',
    });
    // Both requests are counted under the same labels.
    expect(await durations()).toBe(before + 2);
  });

  it('generates a request id for a missing or hostile one', async () => {
    const hostile = await fetch(`${t.url}/healthz`, { headers: { 'x-request-id': 'a b <x>' } });
    expect(hostile.headers.get('x-request-id')).toMatch(GENERATED_ID);
    const missing = await fetch(`${t.url}/healthz`);
    expect(missing.headers.get('x-request-id')).toMatch(GENERATED_ID);
    expect(missing.headers.get('x-request-id')).not.toBe(hostile.headers.get('x-request-id'));
    // A generated id is a safe one: sent back, it is kept.
    const echoed = await fetch(`${t.url}/healthz`, {
      headers: { 'x-request-id': missing.headers.get('x-request-id')! },
    });
    expect(echoed.headers.get('x-request-id')).toBe(missing.headers.get('x-request-id'));
  });

  it('leaves other methods, an Origin and other targets to Koa', async () => {
    const head = await fetch(`${t.url}/healthz`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const post = await fetch(`${t.url}/healthz`, { method: 'POST', body: '{}' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('HEAD, GET');
    // CORS for browser keys acts on requests with an Origin (Vary: Origin), so they go through it.
    const withOrigin = await fetch(`${t.url}/healthz`, {
      headers: { origin: 'https://app.example.com' },
    });
    expect(withOrigin.status).toBe(200);
    expect(withOrigin.headers.get('vary')).toBe('Origin');
    expect(await json(withOrigin)).toEqual({ status: 'ok' });
    const trailing = await fetch(`${t.url}/healthz/`);
    expect(trailing.status).toBe(200);
  });

  it('tells the client to close the connection during shutdown, as Koa routes do', async () => {
    t.app.lifecycle.shuttingDown = true;
    try {
      const fast = await fetch(`${t.url}/healthz`);
      const viaKoa = await fetch(`${t.url}/healthz?probe=1`);
      expect(fast.status).toBe(200);
      expect(fast.headers.get('connection')).toBe('close');
      expect(own(fast)).toEqual(own(viaKoa));
    } finally {
      t.app.lifecycle.shuttingDown = false;
    }
  });
});

describe('health and metrics', () => {
  it('reports liveness and readiness', async () => {
    expect(await json(await fetch(`${t.url}/healthz`))).toEqual({ status: 'ok' });
    const ready = await fetch(`${t.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await json(ready)).toEqual({
      status: 'ready',
      checks: { database: 'ok', migrations: 'ok' },
    });
  });

  it('exposes request durations by route template and process metrics', async () => {
    await fetch(`${t.url}/test/widgets/w_9`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    const text = await (await fetch(`${t.url}/metrics`)).text();
    expect(text).toContain(
      'http_request_duration_seconds_count{method="POST",route="/test/widgets/:id",status="400"}',
    );
    expect(text).toMatch(/^process_cpu_seconds_total /m);
    expect(text).not.toContain('w_9');
  });

  it('protects /metrics with METRICS_TOKEN when set', async () => {
    const token = 'metrics-token-'.padEnd(40, 'z');
    const secured = await startTestApp({ env: { METRICS_TOKEN: token } });
    try {
      const denied = await fetch(`${secured.url}/metrics`, {
        headers: { authorization: 'Bearer wrong' },
      });
      expect(denied.status).toBe(401);
      expect(denied.headers.get('www-authenticate')).toMatch(/^Bearer/);
      const allowed = await fetch(`${secured.url}/metrics`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(allowed.status).toBe(200);
    } finally {
      await secured.close();
    }
  });
});
