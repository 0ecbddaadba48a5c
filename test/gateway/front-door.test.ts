// The front door over real HTTP: real keys, the real app, a fake go-livepeer gateway that is a
// real HTTP server. Refusals, forwarding, failures, streaming and metering.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PaymentRequired } from '../../src/platform/spend.ts';
import type { SpendGate } from '../../src/platform/spend.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { bearer, call, issueKey } from '../support/credentials.ts';
import { fakeLlmSse, startFakeGateway, FAKE_USAGE } from '../support/fake-gateway.ts';
import type { FakeGateway } from '../support/fake-gateway.ts';
import {
  MULTIPART_TYPE,
  eventCount,
  eventsOf,
  multipart,
  pngHeader,
  requestId,
} from './support.ts';
import { eventually } from '../support/eventually.ts';
import { createAccount, newAccount } from '../support/fixtures.ts';

const PRICES = JSON.stringify({
  'text-to-image': {
    price_per_unit: '3',
    pixels_per_unit: '2',
    models: { 'special/model': { price_per_unit: '10', pixels_per_unit: '1' } },
  },
  llm: { price_per_unit: '1000', pixels_per_unit: '1' },
  'audio-to-text': { price_per_unit: '7', pixels_per_unit: '1' },
});

let fake: FakeGateway;
let t: TestApp;
let accountId: string;
let secret: string;
// Billing's decision is not under test here: a gate that refuses one account stands in for it.
const refused = new Set<string>();
const spend: SpendGate = {
  assertMaySpend(principal) {
    if (refused.has(principal.accountId)) {
      throw new PaymentRequired('Balance exhausted; add credit to continue');
    }
  },
};

beforeAll(async () => {
  fake = await startFakeGateway();
  t = await startTestApp({
    env: {
      GATEWAY_URL: fake.url,
      GATEWAY_PRICES: PRICES,
      GATEWAY_RESPONSE_TIMEOUT_MS: '1000',
      GATEWAY_KEY_RATE: '0',
      GATEWAY_ACCOUNT_RATE: '0',
      GATEWAY_KEY_CONCURRENCY: '0',
      GATEWAY_ACCOUNT_CONCURRENCY: '0',
    },
    spend,
  });
  accountId = await newAccount(t);
  secret = (await issueKey(t, accountId, { scopes: ['gateway'] })).secret;
});
afterAll(async () => {
  await t?.close();
  await fake?.close();
});

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const id = requestId();
  const response = await call(t, 'POST', path, {
    headers: { ...bearer(secret), 'x-request-id': id, ...headers },
    body,
  });
  return { ...response, id };
}

/** node:http, because fetch will not send a Connection header naming other headers. */
async function rawPost(path: string, payload: string, headers: Record<string, string>) {
  const id = requestId();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return new Promise<{ status: number; headers: Headers; body: any; id: string }>(
    (resolve, reject) => {
      const request = http.request(
        `${t.url}${path}`,
        { method: 'POST', headers: { ...headers, 'x-request-id': id } },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (c: Buffer) => chunks.push(c));
          response.on('end', () =>
            resolve({
              status: response.statusCode ?? 0,
              headers: new Headers(response.headers as Record<string, string>),
              body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
              id,
            }),
          );
        },
      );
      request.on('error', reject);
      request.end(payload);
    },
  );
}

describe('refusals cost nothing and reach nothing', () => {
  it('401 with the exact body for a missing, malformed or unknown key', async () => {
    const before = fake.received.length;
    for (const authorization of [undefined, 'Basic Zm9vOmJhcg==', 'Bearer th_sk_nope']) {
      const headers: Record<string, string> = {};
      if (authorization !== undefined) headers.authorization = authorization;
      const response = await call(t, 'POST', '/text-to-image', { headers, body: { prompt: 'x' } });
      expect(response.status).toBe(401);
      expect(response.body).toEqual({ error: 'Unauthorized', message: 'Invalid API key' });
      expect(response.headers.get('www-authenticate')).toContain('Bearer');
    }
    expect(fake.received.length).toBe(before);
  });

  it('403 for a key without the gateway scope', async () => {
    const other = await issueKey(t, accountId, { scopes: ['usage:read'] });
    const before = fake.received.length;
    const response = await call(t, 'POST', '/llm', {
      headers: bearer(other.secret),
      body: { model: 'm' },
    });
    expect(response.status).toBe(403);
    expect(response.body.error).toBe('Forbidden');
    expect(fake.received.length).toBe(before);
  });

  it('403 for a browser key from another origin or for a model it does not allow', async () => {
    const browser = await issueKey(t, accountId, {
      kind: 'browser',
      allowedOrigins: ['https://app.example'],
      allowedResources: ['allowed/model'],
    });
    const before = fake.received.length;
    const count = await eventCount(t);
    const wrongOrigin = await call(t, 'POST', '/text-to-image', {
      headers: bearer(browser.secret, { origin: 'https://evil.example' }),
      body: { model_id: 'allowed/model' },
    });
    expect(wrongOrigin.status).toBe(403);
    const wrongModel = await call(t, 'POST', '/text-to-image', {
      headers: bearer(browser.secret, { origin: 'https://app.example' }),
      body: { model_id: 'other/model' },
    });
    expect(wrongModel.status).toBe(403);
    expect(wrongModel.body).toMatchObject({ error: 'Forbidden', rule: 'resource' });
    const noModel = await call(t, 'POST', '/text-to-image', {
      headers: bearer(browser.secret, { origin: 'https://app.example' }),
      body: { prompt: 'x' },
    });
    expect(noModel.status).toBe(403);
    const multipartWrongModel = await fetch(`${t.url}/image-to-image`, {
      method: 'POST',
      headers: {
        ...bearer(browser.secret, { origin: 'https://app.example' }),
        'content-type': MULTIPART_TYPE,
      },
      body: multipart(
        { model_id: 'other/model' },
        { name: 'image', filename: 'a.png', type: 'image/png', data: pngHeader(8, 8) },
      ),
    });
    expect(multipartWrongModel.status).toBe(403);
    expect(fake.received.length).toBe(before);

    const id = requestId();
    const allowed = await call(t, 'POST', '/text-to-image', {
      headers: bearer(browser.secret, { origin: 'https://app.example', 'x-request-id': id }),
      body: { model_id: 'allowed/model', width: 8, height: 8 },
    });
    expect(allowed.status).toBe(200);
    expect(await eventsOf(t, id)).toHaveLength(1);
    // Only the allowed request was metered.
    expect(await eventCount(t)).toBe(count + 1);
  });

  it('402 when billing refuses, before anything is forwarded', async () => {
    const poor = await newAccount(t);
    const key = await issueKey(t, poor, { scopes: ['gateway'] });
    refused.add(poor);
    const before = fake.received.length;
    const count = await eventCount(t);
    const response = await call(t, 'POST', '/llm', {
      headers: bearer(key.secret),
      body: { model: 'm', max_tokens: 10 },
    });
    expect(response.status).toBe(402);
    expect(response.body).toEqual({
      error: 'PaymentRequired',
      message: 'Balance exhausted; add credit to continue',
    });
    expect(fake.received.length).toBe(before);
    expect(await eventCount(t)).toBe(count);
  });

  it('hostile bodies: bad JSON 400, a JSON array 400, a huge JSON body 413', async () => {
    const before = fake.received.length;
    const bad = await call(t, 'POST', '/text-to-image', { headers: bearer(secret), raw: '{"a":' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('BadRequest');
    const array = await call(t, 'POST', '/llm', { headers: bearer(secret), raw: '[1,2]' });
    expect(array.status).toBe(400);
    const huge = await call(t, 'POST', '/llm', {
      headers: bearer(secret),
      raw: JSON.stringify({ prompt: 'x'.repeat(2 * 1024 * 1024) }),
    });
    expect(huge.status).toBe(413);
    expect(huge.body.error).toBe('PayloadTooLarge');
    expect(fake.received.length).toBe(before);
  });

  it('a GET on a batch path is not the front door (404 JSON)', async () => {
    const response = await call(t, 'GET', '/text-to-image', { headers: bearer(secret) });
    expect(response.status).toBe(404);
    expect(response.body.error).toBe('NotFound');
  });
});

describe('forwarding', () => {
  it('drops credentials and hop-by-hop headers, adds X-Forwarded-* and the request id', async () => {
    const body = { prompt: 'a lighthouse', model_id: 'special/model', width: 64, height: 32 };
    const response = await rawPost('/text-to-image?debug=1', JSON.stringify(body), {
      ...bearer(secret),
      'content-type': 'application/json',
      cookie: 'session=secret',
      'x-api-key': 'th_sk_other',
      connection: 'keep-alive, x-drop-me',
      'x-drop-me': 'yes',
      'x-custom': 'kept',
    });
    expect(response.status).toBe(200);
    expect(response.body.images[0].url).toContain('.png');
    const got = fake.received.at(-1)!;
    expect(got.url).toBe('/text-to-image?debug=1');
    expect(got.headers.authorization).toBeUndefined();
    expect(got.headers.cookie).toBeUndefined();
    expect(got.headers['x-api-key']).toBeUndefined();
    expect(got.headers['x-drop-me']).toBeUndefined();
    expect(got.headers['x-custom']).toBe('kept');
    expect(got.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(got.headers['x-forwarded-proto']).toBe('http');
    expect(got.headers['x-forwarded-host']).toBe(new URL(t.url).host);
    expect(got.headers['x-request-id']).toBe(response.id);
    expect(response.headers.get('x-request-id')).toBe(response.id);
    expect(got.bodySha256).toBe(createHash('sha256').update(JSON.stringify(body)).digest('hex'));
    const [event] = await eventsOf(t, response.id);
    // A model's own price wins over the pipeline's: 64 × 32 × 10 / 1.
    expect(event).toMatchObject({
      source: 'tollhouse/gateway',
      account_id: accountId,
      pipeline: 'text-to-image',
      model_id: 'special/model',
      unit: 'pixels',
      quantity: String(64 * 32),
      fee_wei: String(64 * 32 * 10),
      status: 200,
    });
    expect(event!.attributes.bytes_in).toBe(JSON.stringify(body).length);
    expect(event!.attributes.bytes_out).toBeGreaterThan(0);
    expect(event!.attributes.client_closed).toBeUndefined();
  });

  it('passes go-livepeer errors through unchanged and meters them at zero fee', async () => {
    const upstream = { error: { message: 'insufficient capacity' } };
    fake.set('/text-to-image', {
      kind: 'status',
      status: 503,
      body: upstream,
      headers: { 'retry-after': '7' },
    });
    try {
      const response = await post('/text-to-image', { prompt: 'x' });
      expect(response.status).toBe(503);
      expect(response.body).toEqual(upstream);
      expect(response.headers.get('retry-after')).toBe('7');
      const [event] = await eventsOf(t, response.id);
      expect(event).toMatchObject({ status: 503, fee_wei: '0', quantity: String(512 * 512) });
    } finally {
      fake.reset();
    }
  });

  it("passes go-livepeer's 404 and a bodiless 204 through as they are, one event each", async () => {
    // The front door answers outside Koa's response handling: a 404 from go-livepeer must
    // not turn into tollhouse's own "No route" 404, and a 204 must stay without a body.
    const notFound = { error: { message: 'model not found' } };
    fake.set('/text-to-image', { kind: 'status', status: 404, body: notFound });
    try {
      const response = await post('/text-to-image', { prompt: 'x' });
      expect(response.status).toBe(404);
      expect(response.body).toEqual(notFound);
      expect(response.headers.get('x-request-id')).toBe(response.id);
      const events = await eventsOf(t, response.id);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ status: 404, fee_wei: '0' });
    } finally {
      fake.reset();
    }
    fake.set('/text-to-image', { kind: 'status', status: 204, raw: '' });
    try {
      const id = requestId();
      const response = await fetch(`${t.url}/text-to-image`, {
        method: 'POST',
        headers: { ...bearer(secret), 'x-request-id': id, 'content-type': 'application/json' },
        body: '{"prompt":"x"}',
      });
      expect(response.status).toBe(204);
      expect(await response.text()).toBe('');
      const events = await eventsOf(t, id);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ status: 204 });
    } finally {
      fake.reset();
    }
  });

  it('504 when go-livepeer does not answer in time, and the upstream request is closed', async () => {
    fake.set('/llm', { kind: 'stall' });
    try {
      const before = fake.received.length;
      const response = await post('/llm', { model: 'm', max_tokens: 5 });
      expect(response.status).toBe(504);
      expect(response.body).toMatchObject({ error: 'GatewayTimeout' });
      await fake.settled(before + 1);
      expect(fake.received[before]!.closedEarly).toBe(true);
      const [event] = await eventsOf(t, response.id);
      expect(event).toMatchObject({ status: 504, fee_wei: '0' });
    } finally {
      fake.reset();
    }
  });

  it('a response go-livepeer cuts off mid-body ends the client stream and is not charged', async () => {
    fake.set('/text-to-image', { kind: 'cut' });
    try {
      const id = requestId();
      const response = await fetch(`${t.url}/text-to-image`, {
        method: 'POST',
        headers: { ...bearer(secret), 'x-request-id': id, 'content-type': 'application/json' },
        body: '{}',
      });
      expect(response.status).toBe(200);
      await expect(response.arrayBuffer()).rejects.toThrow();
      const [event] = await eventsOf(t, id);
      expect(event).toMatchObject({ status: 502, fee_wei: '0' });
      expect(event!.attributes.failure).toBeDefined();
    } finally {
      fake.reset();
    }
  });

  it('a client that disconnects mid-stream aborts the upstream request', async () => {
    fake.set('/image-to-video', { kind: 'stream', chunks: 1000, chunkBytes: 1024, intervalMs: 20 });
    try {
      const before = fake.received.length;
      const id = requestId();
      const abort = new AbortController();
      const response = await fetch(`${t.url}/image-to-video`, {
        method: 'POST',
        headers: { ...bearer(secret), 'x-request-id': id, 'content-type': MULTIPART_TYPE },
        body: multipart(
          { width: '16', height: '16' },
          { name: 'image', filename: 'a.png', type: 'image/png', data: pngHeader(16, 16) },
        ),
        signal: abort.signal,
      });
      const reader = response.body!.getReader();
      await reader.read();
      abort.abort();
      await fake.settled(before + 1);
      expect(fake.received[before]!.closedEarly).toBe(true);
      const [event] = await eventsOf(t, id);
      expect(event!.attributes.client_closed).toBe(true);
      expect(event!.status).toBe(200);
    } finally {
      fake.reset();
    }
  });
});

describe('client gone during the upload', () => {
  it('aborts the upstream request and records status 499 at fee 0', async () => {
    const before = fake.received.length;
    const id = requestId();
    const abort = new AbortController();
    const head = multipart(
      { model_id: 'm' },
      { name: 'image', filename: 'a.png', type: 'image/png', data: pngHeader(10, 10) },
    ).subarray(0, -20); // without the closing boundary: the upload is not over
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (i++ === 0) {
          controller.enqueue(new Uint8Array(head));
          return;
        }
        // Once go-livepeer has the first bytes, the client goes away mid-upload.
        await eventually(() => (fake.received[before]?.bodyBytes ?? 0) > 0, { intervalMs: 5 });
        abort.abort();
        controller.close();
      },
    });
    await expect(
      fetch(`${t.url}/upscale`, {
        method: 'POST',
        headers: { ...bearer(secret), 'x-request-id': id, 'content-type': MULTIPART_TYPE },
        body,
        duplex: 'half',
        signal: abort.signal,
      }),
    ).rejects.toThrow();
    await fake.settled(before + 1);
    expect(fake.received[before]!.closedEarly).toBe(true);
    const [event] = await eventsOf(t, id);
    expect(event).toMatchObject({ status: 499, fee_wei: '0' });
    expect(event!.attributes.client_closed).toBe(true);
  });
});

describe('live video (WHIP)', () => {
  it('an SDP offer and answer pass through untouched, with Location', async () => {
    const offer = 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n';
    const answer = 'v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=answer\r\nt=0 0\r\n';
    const path = '/live/video-to-video/cam-1/whip';
    fake.set(path, {
      kind: 'status',
      status: 201,
      raw: answer,
      headers: {
        'content-type': 'application/sdp',
        location: '/live/video-to-video/cam-1/whip/r1',
      },
    });
    try {
      const before = fake.received.length;
      const id = requestId();
      const response = await fetch(`${t.url}${path}`, {
        method: 'POST',
        headers: { ...bearer(secret), 'x-request-id': id, 'content-type': 'application/sdp' },
        body: offer,
      });
      expect(response.status).toBe(201);
      expect(response.headers.get('content-type')).toBe('application/sdp');
      expect(response.headers.get('location')).toBe('/live/video-to-video/cam-1/whip/r1');
      expect(await response.text()).toBe(answer);
      const got = fake.received[before]!;
      expect(got.headers['content-type']).toBe('application/sdp');
      expect(got.bodySha256).toBe(createHash('sha256').update(offer).digest('hex'));
      const [event] = await eventsOf(t, id);
      expect(event).toMatchObject({ pipeline: 'live-video-to-video', status: 201, fee_wei: '0' });
    } finally {
      fake.reset();
    }
  });
});

describe('units per pipeline (LIVEPEER.md §6), one event per request', () => {
  async function upload(
    path: string,
    fields: Record<string, string>,
    data: Buffer,
    file = 'image',
  ) {
    const id = requestId();
    const response = await fetch(`${t.url}${path}`, {
      method: 'POST',
      headers: { ...bearer(secret), 'x-request-id': id, 'content-type': MULTIPART_TYPE },
      body: multipart(fields, { name: file, filename: 'f.bin', type: 'image/png', data }),
    });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    const events = await eventsOf(t, id);
    expect(events).toHaveLength(1);
    return events[0]!;
  }

  it('text-to-image: width × height × images (defaults 512 × 512 × 1, go-livepeer submitTextToImage); fee rounds up', async () => {
    const a = await post('/text-to-image', { width: 512, height: 768, num_images_per_prompt: 2 });
    const [ea] = await eventsOf(t, a.id);
    expect(ea).toMatchObject({ unit: 'pixels', quantity: '786432', fee_wei: '1179648' });
    const b = await post('/text-to-image', { width: 3, height: 1 });
    const [eb] = await eventsOf(t, b.id);
    // 3 × 3 / 2 = 4.5 → 5 wei (money.ts rounds up).
    expect(eb).toMatchObject({ quantity: '3', fee_wei: '5' });
    const c = await post('/text-to-image', { prompt: 'defaults' });
    expect((await eventsOf(t, c.id))[0]!.quantity).toBe(String(512 * 512));
  });

  it('image-to-image: the uploaded image size × images', async () => {
    const event = await upload(
      '/image-to-image',
      { num_images_per_prompt: '3' },
      pngHeader(64, 32),
    );
    expect(event).toMatchObject({ pipeline: 'image-to-image', quantity: String(64 * 32 * 3) });
  });

  it('image-to-video: width × height × 25 frames (defaults 1024 × 576)', async () => {
    const event = await upload('/image-to-video', { width: '512', height: '256' }, pngHeader(8, 8));
    expect(event.quantity).toBe(String(512 * 256 * 25));
    const defaults = await upload('/image-to-video', {}, pngHeader(8, 8));
    expect(defaults.quantity).toBe(String(1024 * 576 * 25));
  });

  it('upscale, segment-anything-2, image-to-text: the uploaded image size', async () => {
    for (const path of ['/upscale', '/segment-anything-2', '/image-to-text']) {
      const event = await upload(path, { model_id: 'm' }, pngHeader(100, 50));
      expect(event).toMatchObject({ pipeline: path.slice(1), quantity: '5000', model_id: 'm' });
    }
  });

  it('an upload that is not a readable image: quantity 0, flagged units_unknown', async () => {
    const event = await upload('/upscale', {}, Buffer.from('not an image'));
    expect(event.quantity).toBe('0');
    expect(event.attributes.units_unknown).toBe(true);
  });

  it('audio-to-text: milliseconds up to the last chunk timestamp the response reports', async () => {
    const event = await upload('/audio-to-text', {}, Buffer.alloc(2048, 3), 'audio');
    expect(event).toMatchObject({
      unit: 'milliseconds',
      quantity: '12345',
      fee_wei: String(12345 * 7),
    });
  });

  it('llm JSON: max_tokens (256 without one), as go-livepeer submitLLM pays; usage.total_tokens kept as an attribute', async () => {
    const response = await post('/llm', { model: 'm', max_tokens: 500, messages: [] });
    expect(response.body.usage).toEqual(FAKE_USAGE);
    const [event] = await eventsOf(t, response.id);
    expect(event).toMatchObject({ unit: 'tokens', quantity: '500', fee_wei: '500000' });
    expect(event!.attributes.total_tokens).toBe(30);
    const unbounded = await post('/llm', { model: 'm', messages: [] });
    const [defaults] = await eventsOf(t, unbounded.id);
    expect(defaults).toMatchObject({ quantity: '256', fee_wei: '256000' });
    expect(defaults!.attributes.total_tokens).toBe(30);
  });

  it('llm SSE: streamed byte-identical, paid for max_tokens, total tokens from the usage chunk', async () => {
    const id = requestId();
    const response = await fetch(`${t.url}/llm`, {
      method: 'POST',
      headers: { ...bearer(secret), 'x-request-id': id, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', max_tokens: 500, stream: true }),
    });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    expect(await response.text()).toBe(fakeLlmSse());
    const [event] = await eventsOf(t, id);
    expect(event).toMatchObject({ quantity: '500', fee_wei: '500000', status: 200 });
    expect(event!.attributes.total_tokens).toBe(30);
    expect(event!.attributes.bytes_out).toBe(Buffer.byteLength(fakeLlmSse()));
  });

  it('text-to-speech: characters of text as go-livepeer counts them (UTF-8 bytes)', async () => {
    const response = await post('/text-to-speech', { text: 'héllo' });
    const [event] = await eventsOf(t, response.id);
    expect(event).toMatchObject({ unit: 'characters', quantity: '6', fee_wei: '0' });
  });

  it('live video paths: forwarded for any method, one request unit at fee 0', async () => {
    const response = await post('/live/video-to-video/my-stream/start', { model_id: 'x' });
    expect(response.status).toBe(200);
    expect(fake.received.at(-1)!.url).toBe('/live/video-to-video/my-stream/start');
    const [event] = await eventsOf(t, response.id);
    expect(event).toMatchObject({
      pipeline: 'live-video-to-video',
      unit: 'requests',
      quantity: '1',
      fee_wei: '0',
    });
  });
});

describe('streaming without holding bodies', () => {
  it('a 50 MB multipart upload passes byte-identical, and go-livepeer reading slowly holds the client back', async () => {
    const before = fake.received.length;
    const boundary = '----tollhouse-test-boundary';
    const head = Buffer.concat([
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="model_id"\r\n\r\nbig\r\n` +
          `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n`,
      ),
      pngHeader(4000, 3000),
    ]);
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const chunk = new Uint8Array(64 * 1024).fill(7);
    const chunks = 800; // 800 × 64 KiB = 50 MiB
    const total = head.length + chunks * chunk.length + tail.length;
    // go-livepeer stops reading after 1 MiB until released. A proxy with backpressure stops
    // pulling from the client after a few socket and stream buffers; one that holds bodies
    // keeps reading. Released once the client is stuck — or past 32 MiB, which fails below.
    // (Most of what is in flight sits in the kernel's loopback socket buffers, autotuned up to
    // several MiB per direction and connection.)
    const HOLD_AFTER = 1024 * 1024;
    const BOUND = 32 * 1024 * 1024;
    fake.set('/upscale', { kind: 'hold', afterBytes: HOLD_AFTER });
    const hash = createHash('sha256');
    let sent = 0;
    let sentWhileHeld = 0;
    let releaseTimer: NodeJS.Timeout | null = null;
    const watch = setInterval(() => {
      // The client made no progress for a while with go-livepeer holding: release it.
      if (fake.holding() && releaseTimer === null) {
        releaseTimer = setTimeout(() => {
          sentWhileHeld = Math.max(sentWhileHeld, sent);
          fake.release();
        }, 500);
      }
    }, 20);
    let i = -1;
    const body = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          if (fake.holding()) sentWhileHeld = Math.max(sentWhileHeld, sent);
          if (fake.holding() && sent > BOUND) fake.release();
          if (i === -1) {
            hash.update(head);
            controller.enqueue(new Uint8Array(head));
            sent += head.length;
          } else if (i < chunks) {
            hash.update(chunk);
            // The same bytes every time: the client allocates nothing per chunk.
            controller.enqueue(chunk);
            sent += chunk.length;
          } else {
            hash.update(tail);
            controller.enqueue(new Uint8Array(tail));
            controller.close();
          }
          i++;
        },
      },
      { highWaterMark: 1 },
    );
    const id = requestId();
    try {
      const response = await fetch(`${t.url}/upscale`, {
        method: 'POST',
        headers: { ...bearer(secret), 'x-request-id': id, 'content-type': MULTIPART_TYPE },
        body,
        duplex: 'half',
      });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
    } finally {
      clearInterval(watch);
      fake.reset();
    }
    const got = fake.received[before]!;
    expect(got.bodyBytes).toBe(total);
    expect(got.bodySha256).toBe(hash.digest('hex'));
    // While go-livepeer read nothing past 1 MiB, the client could send only what the buffers
    // between them hold — not the body.
    expect(sentWhileHeld).toBeGreaterThan(HOLD_AFTER);
    expect(sentWhileHeld).toBeLessThan(BOUND);
    const [event] = await eventsOf(t, id);
    expect(event).toMatchObject({ quantity: String(4000 * 3000), model_id: 'big' });
    expect(event!.attributes.bytes_in).toBe(total);
  });
});

describe('unconfigured or unreachable gateway', () => {
  it('503 JSON without GATEWAY_URL; 502 JSON when nothing listens there', async () => {
    const off = await startTestApp();
    try {
      const account = await newAccount(off);
      const key = await issueKey(off, account, { scopes: ['gateway'] });
      const response = await call(off, 'POST', '/text-to-image', {
        headers: bearer(key.secret),
        body: {},
      });
      expect(response.status).toBe(503);
      // The reason is the operator's to fix and safe to show (not a hidden 5xx).
      expect(response.body).toEqual({
        error: 'ServiceUnavailable',
        message: 'The gateway is not configured (GATEWAY_URL is unset)',
      });
    } finally {
      await off.close();
    }

    // A port that was just free: nothing accepts connections on it.
    const probe = http.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((r) => probe.close(() => r()));
    const down = await startTestApp({ env: { GATEWAY_URL: `http://127.0.0.1:${port}` } });
    try {
      const account = await newAccount(down);
      const key = await issueKey(down, account, { scopes: ['gateway'] });
      const id = requestId();
      const response = await call(down, 'POST', '/llm', {
        headers: bearer(key.secret, { 'x-request-id': id }),
        body: { model: 'm', max_tokens: 9 },
      });
      expect(response.status).toBe(502);
      expect(response.body).toEqual({
        error: 'BadGateway',
        message: 'The gateway could not be reached',
      });
      const [event] = await eventsOf(down, id);
      expect(event).toMatchObject({ status: 502, fee_wei: '0', quantity: '9' });
    } finally {
      await down.close();
    }
  });
});

describe('anonymous mode', () => {
  it('meters unauthenticated requests to the anonymous account, with strict limits', async () => {
    const anonymous = 'acct_anonymous0000000000000';
    const anon = await startTestApp({
      env: {
        GATEWAY_URL: fake.url,
        GATEWAY_ANONYMOUS_ACCOUNT: anonymous,
        GATEWAY_ANONYMOUS_RATE: '1',
      },
    });
    try {
      await createAccount(anon.app.database.db, { id: anonymous, email: 'anonymous@example.com' });
      const id = requestId();
      const ok = await call(anon, 'POST', '/text-to-speech', {
        headers: { 'x-request-id': id },
        body: { text: 'hi' },
      });
      expect(ok.status).toBe(200);
      const [event] = await eventsOf(anon, id);
      expect(event).toMatchObject({ account_id: anonymous, key_id: null, quantity: '2' });
      expect(event!.attributes.anonymous).toBe(true);
      // A credential that is wrong is still refused, never downgraded to anonymous.
      const bad = await call(anon, 'POST', '/text-to-speech', {
        headers: bearer('th_sk_wrong'),
        body: { text: 'hi' },
      });
      expect(bad.status).toBe(401);
      // One request per second, burst 2: the bucket empties within a few requests.
      let limited: Awaited<ReturnType<typeof call>> | null = null;
      for (let i = 0; i < 10 && limited === null; i++) {
        const response = await call(anon, 'POST', '/text-to-speech', { body: { text: 'hi' } });
        if (response.status === 429) limited = response;
      }
      expect(limited).not.toBeNull();
      expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(limited!.body).toMatchObject({ error: 'TooManyRequests', scope: 'client' });
    } finally {
      await anon.close();
    }
  });
});

describe('rate limits', () => {
  it('429 with Retry-After for too many requests at once per key and per account', async () => {
    const limited = await startTestApp({
      env: {
        GATEWAY_URL: fake.url,
        GATEWAY_KEY_CONCURRENCY: '1',
        GATEWAY_ACCOUNT_CONCURRENCY: '2',
        GATEWAY_RESPONSE_TIMEOUT_MS: '60000',
      },
    });
    fake.set('/llm', { kind: 'stall' });
    try {
      const account = await newAccount(limited);
      const keys = await Promise.all(
        [0, 1, 2].map(() => issueKey(limited, account, { scopes: ['gateway'] })),
      );
      const before = fake.received.length;
      const aborts = [new AbortController(), new AbortController()];
      const inFlight = [0, 1].map((i) =>
        fetch(`${limited.url}/llm`, {
          method: 'POST',
          headers: { ...bearer(keys[i]!.secret), 'content-type': 'application/json' },
          body: '{"model":"m"}',
          signal: aborts[i]!.signal,
        }).catch(() => null),
      );
      await eventually(() => fake.received.length >= before + 2, { intervalMs: 5 });
      const sameKey = await call(limited, 'POST', '/llm', {
        headers: bearer(keys[0]!.secret),
        body: { model: 'm' },
      });
      expect(sameKey.status).toBe(429);
      expect(sameKey.headers.get('retry-after')).toBe('1');
      expect(sameKey.body).toMatchObject({ error: 'TooManyRequests', scope: 'key' });
      const sameAccount = await call(limited, 'POST', '/llm', {
        headers: bearer(keys[2]!.secret),
        body: { model: 'm' },
      });
      expect(sameAccount.status).toBe(429);
      expect(sameAccount.body).toMatchObject({ scope: 'account' });
      expect(fake.received.length).toBe(before + 2);
      for (const abort of aborts) abort.abort();
      await Promise.all(inFlight);
      await fake.settled(before + 2);
    } finally {
      fake.reset();
      await limited.close();
    }
  });

  it('429 with Retry-After once a key exceeds its requests per second', async () => {
    const limited = await startTestApp({ env: { GATEWAY_URL: fake.url, GATEWAY_KEY_RATE: '1' } });
    try {
      const account = await newAccount(limited);
      const key = await issueKey(limited, account, { scopes: ['gateway'] });
      let refusal: Awaited<ReturnType<typeof call>> | null = null;
      for (let i = 0; i < 10 && refusal === null; i++) {
        const response = await call(limited, 'POST', '/text-to-speech', {
          headers: bearer(key.secret),
          body: { text: 'x' },
        });
        if (response.status === 429) refusal = response;
        else expect(response.status).toBe(200);
      }
      expect(refusal).not.toBeNull();
      expect(Number(refusal!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(refusal!.body).toMatchObject({
        error: 'TooManyRequests',
        scope: 'key',
        limit: 'rate',
      });
    } finally {
      await limited.close();
    }
  });
});
