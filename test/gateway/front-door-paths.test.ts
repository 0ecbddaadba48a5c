// The front door and forward-auth against paths and headers meant to mislead: dot-segments
// (raw and percent-encoded), absolute-form request targets, and identity headers a client
// sends as if tollhouse had set them. Asserts exactly what the fake go-livepeer received.
// Raw node:http throughout: fetch (WHATWG URL) would resolve `..` and `%2e` before sending.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { bearer, issueKey } from '../support/credentials.ts';
import { startFakeGateway } from '../support/fake-gateway.ts';
import type { FakeGateway } from '../support/fake-gateway.ts';
import { eventCount, eventsOf, requestId } from './support.ts';
import { newAccount } from '../support/fixtures.ts';

let fake: FakeGateway;
let t: TestApp;
let accountId: string;
let secret: string;

beforeAll(async () => {
  fake = await startFakeGateway();
  t = await startTestApp({
    env: {
      GATEWAY_URL: fake.url,
      GATEWAY_KEY_RATE: '0',
      GATEWAY_ACCOUNT_RATE: '0',
      GATEWAY_KEY_CONCURRENCY: '0',
      GATEWAY_ACCOUNT_CONCURRENCY: '0',
    },
    // Billing's decision is not under test here.
    spend: { assertMaySpend() {} },
  });
  accountId = await newAccount(t);
  secret = (await issueKey(t, accountId, { scopes: ['gateway'] })).secret;
});
afterAll(async () => {
  await t?.close();
  await fake?.close();
});

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  id: string;
}

/** One request with the request target exactly as given. */
function raw(
  method: string,
  target: string,
  headers: Record<string, string>,
  payload?: string,
): Promise<RawResponse> {
  const id = requestId();
  const { port } = new URL(t.url);
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: target,
        headers: {
          ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
          'x-request-id': id,
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: text === '' ? null : JSON.parse(text),
            id,
          });
        });
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}

describe('dot-segments in front door paths', () => {
  const refused = [
    '/live/video-to-video/../../text-to-image',
    '/live/video-to-video/s1/../../../llm',
    '/live/video-to-video/./s1/start',
    '/live/video-to-video/s1/..',
    '/live/video-to-video/%2e%2e/%2E%2E/llm',
    '/live/video-to-video/%2E./llm',
    '/live/video-to-video/s1%2F..%2F..%2Fllm',
    '/live/video-to-video/s1%2f..%2fstart',
    '/process/request/../../llm',
    '/process/request/..%2f..%2fllm',
    '/process/request/%2e%2e%2F%2e%2e%2Fllm',
    '/process/request/cap/%2E',
  ];

  it.each(refused)(
    '%s is refused with 400 before authentication and reaches nothing',
    async (path) => {
      const before = fake.received.length;
      const events = await eventCount(t);
      for (const method of ['POST', 'GET']) {
        const response = await raw(
          method,
          path,
          bearer(secret),
          method === 'POST' ? '{}' : undefined,
        );
        expect(response.status).toBe(400);
        expect(response.body).toEqual({
          error: 'BadRequest',
          message:
            'The path must not contain "." or ".." segments or percent-encoded dots or slashes',
        });
      }
      // Refused before the credential is even looked at: no key needed to learn the rule.
      const anonymous = await raw('POST', path, {}, '{}');
      expect(anonymous.status).toBe(400);
      expect(fake.received.length).toBe(before);
      expect(await eventCount(t)).toBe(events);
    },
  );

  it('dots inside a segment are not dot-segments: forwarded as sent', async () => {
    for (const path of ['/live/video-to-video/s1.v2/start', '/process/request/a..b']) {
      const response = await raw('POST', path, bearer(secret), '{}');
      expect(response.status).toBe(200);
      expect(fake.received.at(-1)!.url).toBe(path);
    }
  });
});

describe('absolute-form request targets', () => {
  it('forwards the path and query alone, never the client-given scheme and host', async () => {
    const response = await raw(
      'POST',
      'http://evil.example:9999/live/video-to-video/s1/start?x=1&y=2',
      bearer(secret),
      '{}',
    );
    expect(response.status).toBe(200);
    const got = fake.received.at(-1)!;
    expect(got.url).toBe('/live/video-to-video/s1/start?x=1&y=2');
    const [event] = await eventsOf(t, response.id);
    expect(event).toMatchObject({ pipeline: 'live-video-to-video', account_id: accountId });
  });

  it('a batch pipeline in absolute form is forwarded to the same pipeline', async () => {
    const response = await raw('POST', 'http://evil.example/llm', bearer(secret), '{"model":"m"}');
    expect(response.status).toBe(200);
    expect(fake.received.at(-1)!.url).toBe('/llm');
    const [event] = await eventsOf(t, response.id);
    expect(event).toMatchObject({ pipeline: 'llm' });
  });

  it('an absolute-form target with dot-segments is refused like any other', async () => {
    const before = fake.received.length;
    const response = await raw(
      'POST',
      'http://evil.example/live/video-to-video/../../llm',
      bearer(secret),
      '{}',
    );
    expect(response.status).toBe(400);
    expect(response.body.error).toBe('BadRequest');
    expect(fake.received.length).toBe(before);
  });
});

describe('identity headers sent by the client', () => {
  it('X-Tollhouse-*, Forwarded and X-Forwarded-* from the client never reach the gateway', async () => {
    const response = await raw(
      'POST',
      '/live/video-to-video/s1/start',
      {
        ...bearer(secret),
        'X-Tollhouse-Account': 'acct_someone_else',
        'X-Tollhouse-Key': 'key_someone_else',
        'X-Tollhouse-App': 'app_someone_else',
        'X-Tollhouse-Scopes': 'admin',
        'X-Tollhouse-Anything': 'x',
        Forwarded: 'for=10.9.9.9;host=evil.example;proto=https',
        'X-Forwarded-For': '10.9.9.9',
        'X-Forwarded-Host': 'evil.example',
        'X-Forwarded-Proto': 'https',
        'X-Custom': 'kept',
      },
      '{}',
    );
    expect(response.status).toBe(200);
    const got = fake.received.at(-1)!;
    const names = Object.keys(got.headers);
    expect(names.filter((n) => n.startsWith('x-tollhouse-'))).toEqual([]);
    expect(got.headers.forwarded).toBeUndefined();
    // Without TRUST_PROXY the client's X-Forwarded-* are replaced by what tollhouse saw.
    expect(got.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(got.headers['x-forwarded-host']).toBe(new URL(t.url).host);
    expect(got.headers['x-forwarded-proto']).toBe('http');
    expect(got.headers['x-request-id']).toBe(response.id);
    expect(got.headers['x-custom']).toBe('kept');
  });
});

describe('forward-auth (/v1/auth/verify)', () => {
  const spoofed = {
    'X-Tollhouse-Account': 'acct_someone_else',
    'X-Tollhouse-App': 'app_someone_else',
    'X-Tollhouse-Key': 'key_someone_else',
    'X-Tollhouse-Scopes': 'admin',
  };

  it("answers with the credential's identity, never the client's X-Tollhouse-* values", async () => {
    const key = await issueKey(t, accountId, { scopes: ['gateway'] });
    const response = await raw('GET', '/v1/auth/verify', { ...bearer(key.secret), ...spoofed });
    expect(response.status).toBe(200);
    expect(response.headers['x-tollhouse-account']).toBe(accountId);
    expect(response.headers['x-tollhouse-key']).toBe(key.key.id);
    // Present even when empty, so a proxy copying them replaces whatever the client sent.
    expect(response.headers['x-tollhouse-app']).toBe('');
    expect(response.headers['x-tollhouse-scopes']).toBe('gateway');
  });

  it('a refusal carries no X-Tollhouse-* header at all', async () => {
    for (const headers of [spoofed, { ...bearer('th_sk_nope'), ...spoofed }]) {
      const response = await raw('GET', '/v1/auth/verify', headers);
      expect(response.status).toBe(401);
      expect(response.body).toEqual({ error: 'Unauthorized', message: 'Invalid API key' });
      expect(Object.keys(response.headers).filter((n) => n.startsWith('x-tollhouse-'))).toEqual([]);
    }
  });

  it.each([
    ['x-forwarded-uri', '/live/video-to-video/../../llm'],
    ['x-original-uri', '/live/video-to-video/%2e%2e/%2e%2e/llm?x=1'],
    ['x-forwarded-uri', '/process/request/a%2F..%2Fb'],
  ])('%s %s is refused with 400 and no identity headers', async (name, uri) => {
    const response = await raw('GET', '/v1/auth/verify', { ...bearer(secret), [name]: uri });
    expect(response.status).toBe(400);
    expect(response.body).toEqual({
      error: 'BadRequest',
      message:
        'The forwarded URI must not contain "." or ".." segments or percent-encoded dots or slashes',
    });
    expect(response.headers['x-tollhouse-account']).toBeUndefined();
  });
});
