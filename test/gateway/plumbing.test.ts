// Front-door paths are answered outside Koa's middleware chain (`Http.listener` in
// src/platform/http.ts: the hot path, issue #6). These pin that they still get what every
// Koa route gets — request id, CORS for browser keys, the JSON error shape, the log lines,
// metrics, `Connection: close` during shutdown — by comparing with a Koa route where they can.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/platform/log.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { bearer, call, issueKey } from '../support/credentials.ts';
import { startFakeGateway } from '../support/fake-gateway.ts';
import type { FakeGateway } from '../support/fake-gateway.ts';
import { requestId } from './support.ts';
import { eventually } from '../support/eventually.ts';
import { newAccount } from '../support/fixtures.ts';

const ORIGIN = 'https://app.example.com';
const lines: Array<Record<string, unknown>> = [];
const sink = new Writable({
  write(chunk: Buffer, _encoding, callback) {
    for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
    callback();
  },
});

let fake: FakeGateway;
let t: TestApp;
let browser: string;

beforeAll(async () => {
  fake = await startFakeGateway();
  t = await startTestApp({
    env: { GATEWAY_URL: fake.url, GATEWAY_PRICES: JSON.stringify({}) },
    log: createLogger({ level: 'info', destination: sink }),
  });
  const accountId = await newAccount(t);
  browser = (
    await issueKey(t, accountId, {
      kind: 'browser',
      scopes: ['gateway'],
      allowedOrigins: [ORIGIN],
      allowedResources: ['text-to-image', 'live/video-to-video/stream-1'],
    })
  ).secret;
  // The browser origins are loaded on the key change notification.
  await eventually(
    async () =>
      (
        await fetch(`${t.url}/v1/keys`, {
          method: 'OPTIONS',
          headers: { origin: ORIGIN, 'access-control-request-method': 'GET' },
        })
      ).status === 204,
  );
});
afterAll(async () => {
  await t?.close();
  await fake?.close();
});

/** The log lines of one request, without the fields that differ per line or per path. */
function logged(id: string) {
  return lines
    .filter((l) => l.requestId === id)
    .map(({ msg, level, error, message, req, res }) =>
      JSON.parse(JSON.stringify({ msg, level, error, message, req, res })),
    ) as Array<Record<string, unknown>>;
}

// Every header the app sets itself (not Date, Keep-Alive: Node's own).
const APP_HEADERS = [
  'content-type',
  'content-length',
  'www-authenticate',
  'vary',
  'access-control-allow-origin',
  'access-control-expose-headers',
  'connection',
];

function headersOf(response: { headers: Headers }): Record<string, string | null> {
  return Object.fromEntries(APP_HEADERS.map((name) => [name, response.headers.get(name)]));
}

describe('a front-door path is answered like a Koa route', () => {
  it('a refusal: same status, headers, body and log lines as the same refusal on a Koa route', async () => {
    const front = requestId();
    const koa = requestId();
    const headers = (id: string) => ({ origin: ORIGIN, 'x-request-id': id });
    const viaFront = await call(t, 'POST', '/text-to-image', { headers: headers(front), raw: '' });
    const viaKoa = await call(t, 'POST', '/v1/keys', { headers: headers(koa), raw: '' });
    expect(viaFront.status).toBe(401);
    expect(viaFront.body).toEqual({ error: 'Unauthorized', message: 'Invalid API key' });
    expect(viaFront.headers.get('x-request-id')).toBe(front);
    expect(viaFront.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(viaKoa.status).toBe(viaFront.status);
    expect(viaKoa.body).toEqual(viaFront.body);
    expect(headersOf(viaFront)).toEqual(headersOf(viaKoa));

    // The lines differ only in the path.
    const anyPath = (l: Record<string, unknown>) =>
      l.req === undefined ? l : { ...l, req: { ...(l.req as object), path: 'P' } };
    const frontLines = logged(front).map(anyPath);
    expect(frontLines).toEqual(logged(koa).map(anyPath));
    expect(frontLines.map((l) => l.msg).slice(-2)).toEqual(['request refused', 'request']);
    expect(logged(front).at(-1)).toMatchObject({
      req: { method: 'POST', path: '/text-to-image' },
      res: { status: 401 },
    });
  });

  it('a proxied answer: the request id, CORS headers, a log line and a metric by route', async () => {
    const id = requestId();
    const response = await call(t, 'POST', '/text-to-image', {
      headers: bearer(browser, { origin: ORIGIN, 'x-request-id': id }),
      body: { prompt: 'a lighthouse' },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-request-id')).toBe(id);
    expect(response.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(response.headers.get('access-control-expose-headers')).toBe('X-Request-Id, Retry-After');
    expect(response.headers.get('vary')).toMatch(/Origin/);
    expect(logged(id)).toEqual([
      {
        msg: 'request',
        level: 'info',
        req: { method: 'POST', path: '/text-to-image', ip: '127.0.0.1' },
        res: { status: 200 },
      },
    ]);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toContain(
      'http_request_duration_seconds_count{method="POST",route="/text-to-image",status="200"}',
    );
    expect(metrics).toContain(
      'http_request_duration_seconds_count{method="POST",route="/text-to-image",status="401"}',
    );
  });

  it('a preflight on a live path: 204 for an allowed origin, the 403 JSON error otherwise', async () => {
    const preflight = (origin: string) =>
      fetch(`${t.url}/live/video-to-video/stream-1/whip`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type',
        },
      });
    const before = fake.received.length;
    const allowed = await preflight(ORIGIN);
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(allowed.headers.get('access-control-allow-methods')).toBe(
      'GET, POST, PUT, PATCH, DELETE',
    );
    expect(allowed.headers.get('access-control-allow-headers')).toBe('authorization, content-type');
    expect(allowed.headers.get('access-control-max-age')).toBe('600');
    expect(await allowed.text()).toBe('');
    const refused = await preflight('https://evil.example');
    expect(refused.status).toBe(403);
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    expect(refused.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(((await refused.json()) as { rule: string }).rule).toBe('cors-origin');
    expect(fake.received.length).toBe(before);
  });

  it('HEAD on a live path refused: the error headers, with a Content-Length and no body', async () => {
    const response = await fetch(`${t.url}/live/video-to-video/stream-1/status`, {
      method: 'HEAD',
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const body = JSON.stringify({ error: 'Unauthorized', message: 'Invalid API key' });
    expect(response.headers.get('content-length')).toBe(String(Buffer.byteLength(body)));
    expect(await response.text()).toBe('');
  });

  it('during shutdown an answer decided before the headers tells the client to close', async () => {
    t.app.lifecycle.shuttingDown = true;
    try {
      const response = await call(t, 'POST', '/llm', { body: { model: 'm' } });
      expect(response.status).toBe(401);
      expect(response.headers.get('connection')).toBe('close');
    } finally {
      t.app.lifecycle.shuttingDown = false;
    }
  });

  it('a 5xx quotes the request id instead of internals and is logged as an error', async () => {
    const id = requestId();
    // Nothing listens on port 9 (discard) on a test machine: go-livepeer is unreachable.
    const offline = await startTestApp({
      env: { GATEWAY_URL: 'http://127.0.0.1:9' },
      log: createLogger({ level: 'info', destination: sink }),
    });
    try {
      const account = await newAccount(offline);
      const key = (await issueKey(offline, account, { scopes: ['gateway'] })).secret;
      const response = await call(offline, 'POST', '/text-to-image', {
        headers: bearer(key, { 'x-request-id': id }),
        body: { prompt: 'x' },
      });
      expect(response.status).toBe(502);
      expect(response.body).toEqual({
        error: 'BadGateway',
        message: 'The gateway could not be reached',
      });
      expect(logged(id).map((l) => [l.msg, l.level])).toEqual([
        ['The gateway could not be reached', 'error'],
        ['request failed', 'error'],
      ]);
    } finally {
      await offline.close();
    }
  });
});
