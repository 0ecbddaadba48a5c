// Verification over real HTTP (/v1/auth/verify and the management API): every refusal, the
// log lines that name client mistakes, browser-key rules, CORS, and the cache.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_CALLER, mintKey } from '../../src/keys/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { eventually } from '../support/eventually.ts';
import { INVALID, bearer, call, capturingLogger, issueKey, newAccount } from './support.ts';

const validate = createResponseValidator();
const { log, lines } = capturingLogger();
let t: TestApp;
let account: string;
let backend: string;
let browser: string;
const ORIGIN = 'https://app.example.com';

beforeAll(async () => {
  t = await startTestApp({ log });
  account = await newAccount(t);
  backend = (await issueKey(t, account, { scopes: ['gateway', 'usage:read'] })).secret;
  browser = (
    await issueKey(t, account, {
      kind: 'browser',
      scopes: ['gateway'],
      allowedOrigins: [ORIGIN],
      allowedResources: ['text-to-image', 'live/video-to-video/stream-1'],
    })
  ).secret;
});
afterAll(async () => {
  await t.close();
});

async function verify(headers: Record<string, string>, query = '') {
  const response = await call(t, 'GET', `/v1/auth/verify${query}`, { headers });
  expect(validate('GET', '/v1/auth/verify', response.status, response.body)).toBeNull();
  return response;
}

/** The log lines of one request, found by its id. */
function logged(requestId: string) {
  return lines.filter((l) => l.requestId === requestId);
}

describe('401 Invalid API key', () => {
  it('answers missing, malformed, unknown, bad-checksum, revoked and expired credentials alike', async () => {
    const unknown = mintKey('backend').secret;
    const truncated = backend.slice(0, -1);
    const badChecksum = backend.slice(0, -1) + (backend.endsWith('a') ? 'b' : 'a');
    const { key: revokedKey, secret: revoked } = await issueKey(t, account);
    await t.app.keys.service.revoke(CLI_CALLER, revokedKey.id);
    const expiring = await issueKey(t, account, {
      expiresAt: new Date(t.clock().getTime() + 1_000),
    });
    expect((await verify(bearer(expiring.secret))).status).toBe(200);
    // Past its expiry on the app's clock (the cached entry must not outlive it).
    t.clock.advance(1_001);
    const cases: Array<[string, Record<string, string>]> = [
      ['missing', {}],
      ['empty', { authorization: '' }],
      ['no credential', { authorization: 'Bearer' }],
      ['not ours', { authorization: 'Bearer abc.def.ghi' }],
      ['truncated', bearer(truncated)],
      ['bad checksum', bearer(badChecksum)],
      ['unknown', bearer(unknown)],
      ['revoked', bearer(revoked)],
      ['expired (and cached)', bearer(expiring.secret)],
      ['two words', { authorization: `Bearer ${backend} extra` }],
    ];
    for (const [name, headers] of cases) {
      const response = await verify(headers);
      expect(response.status, name).toBe(401);
      expect(response.body, name).toEqual(INVALID);
      expect(response.headers.get('www-authenticate'), name).toBe(
        'Bearer realm="tollhouse", error="invalid_token"',
      );
    }
  });

  it('logs the reason, never the key', async () => {
    const badChecksum = backend.slice(0, -1) + (backend.endsWith('a') ? 'b' : 'a');
    await verify({ ...bearer(badChecksum), 'x-request-id': 'checksum-1' });
    const line = logged('checksum-1').find((l) => typeof l.reason === 'string');
    expect(line?.reason).toMatch(/checksum/);
    expect(JSON.stringify(lines)).not.toContain(backend.slice(6, 30));
  });

  it('names the common client mistakes in a log line', async () => {
    const cases: Array<[string, string, number, RegExp]> = [
      ['colon', `Bearer: ${backend}`, 401, /colon/],
      ['bare', backend, 401, /without a scheme/],
      ['quoted', `Bearer "${backend}"`, 401, /quotes/],
      ['scheme', `Token ${backend}`, 401, /"Token" scheme/],
      ['lower', `bearer ${backend}`, 200, /another case \(accepted/],
      ['spaces', `Bearer    ${backend}`, 200, /extra whitespace/],
    ];
    for (const [id, authorization, status, mistake] of cases) {
      const response = await verify({ authorization, 'x-request-id': `mistake-${id}` });
      expect(response.status, id).toBe(status);
      const line = logged(`mistake-${id}`).find((l) => typeof l.mistake === 'string');
      expect(line?.mistake, id).toMatch(mistake);
    }
    await verify({ ...bearer(backend), 'x-request-id': 'mistake-none' });
    expect(logged('mistake-none').some((l) => 'mistake' in l)).toBe(false);
  });
});

describe('403 rules', () => {
  it('refuses a backend key presented by a browser', async () => {
    const response = await verify(bearer(backend, { origin: ORIGIN }));
    expect(response.status).toBe(403);
    expect(response.body).toMatchObject({ error: 'Forbidden', rule: 'backend-key-in-browser' });
    expect(response.body.message).toMatch(/Backend keys must not be used from a browser/);
  });

  it('refuses a browser key from another origin, or without one', async () => {
    const other = await verify(bearer(browser, { origin: 'https://evil.example' }));
    expect(other.status).toBe(403);
    expect(other.body).toMatchObject({ rule: 'browser-key-origin' });
    expect(other.body.message).toContain('https://evil.example');
    const none = await verify(bearer(browser));
    expect(none.status).toBe(403);
    expect(none.body.rule).toBe('browser-key-needs-origin');
  });

  it('allows a browser key only for its resources', async () => {
    const headers = bearer(browser, { origin: ORIGIN });
    const unnamed = await verify(headers);
    expect(unnamed.status).toBe(403);
    expect(unnamed.body).toMatchObject({ rule: 'resource' });
    expect(unnamed.body.message).toMatch(/names none/);
    const wrong = await verify({ ...headers, 'x-forwarded-uri': '/llm' });
    expect(wrong.status).toBe(403);
    expect(wrong.body.message).toContain('"llm"');
    expect((await verify(headers, '?resource=upscale')).status).toBe(403);
    expect((await verify({ ...headers, 'x-forwarded-uri': '/text-to-image?x=1' })).status).toBe(
      200,
    );
    expect(
      (await verify({ ...headers, 'x-original-uri': '/live/video-to-video/stream-1/x' })).status,
    ).toBe(200);
    expect(
      (await verify({ ...headers, 'x-tollhouse-resource': 'upscale, text-to-image' })).status,
    ).toBe(200);
    expect((await verify(headers, '?resource=text-to-image')).status).toBe(200);
  });

  it('requires the gateway scope by default, or the scopes named', async () => {
    const { secret } = await issueKey(t, account, { scopes: ['usage:read'] });
    const refused = await verify(bearer(secret));
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ rule: 'scope' });
    expect((await verify(bearer(secret), '?scope=usage:read')).status).toBe(200);
    expect((await verify(bearer(backend), '?scope=signer')).status).toBe(403);
    expect((await verify(bearer(backend), '?scope=root')).status).toBe(400);
  });
});

describe('GET /v1/auth/verify', () => {
  it('answers 200 with the principal in headers for the proxy', async () => {
    const { key, secret } = await issueKey(t, account, { scopes: ['gateway', 'usage:read'] });
    const response = await verify(bearer(secret));
    expect(response.status).toBe(200);
    expect(response.headers.get('x-tollhouse-account')).toBe(account);
    expect(response.headers.get('x-tollhouse-key')).toBe(key.id);
    expect(response.headers.get('x-tollhouse-app')).toBe('');
    expect(response.headers.get('x-tollhouse-scopes')).toBe('gateway usage:read');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.body).toEqual({
      via: 'api_key',
      account_id: account,
      app_id: null,
      key_id: key.id,
      scopes: ['gateway', 'usage:read'],
    });
  });
});

describe('CORS', () => {
  it('answers a preflight only for an origin a browser key allows', async () => {
    const preflight = (origin: string) =>
      fetch(`${t.url}/v1/auth/verify`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type',
        },
      });
    const allowed = await preflight(ORIGIN);
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(allowed.headers.get('access-control-allow-headers')).toBe('authorization, content-type');
    expect(allowed.headers.get('vary')).toMatch(/Origin/);
    const refused = await preflight('https://evil.example');
    expect(refused.status).toBe(403);
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    expect(((await refused.json()) as { rule: string }).rule).toBe('cors-origin');
    // The OpenID provider's endpoints keep their own CORS rules.
    const oidc = await fetch(`${t.url}/oidc/token`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(oidc.status).not.toBe(403);
  });

  it('follows key changes: a new browser key opens its origin, revoking it closes it', async () => {
    const origin = 'https://shop.example.org';
    const preflight = async () =>
      (
        await fetch(`${t.url}/anything`, {
          method: 'OPTIONS',
          headers: { origin, 'access-control-request-method': 'GET' },
        })
      ).status;
    expect(await preflight()).toBe(403);
    const { key } = await issueKey(t, account, {
      kind: 'browser',
      scopes: ['gateway'],
      allowedOrigins: [origin],
      allowedResources: ['llm'],
    });
    await eventually(async () => (await preflight()) === 204);
    await t.app.keys.service.revoke(CLI_CALLER, key.id);
    await eventually(async () => (await preflight()) === 403);
  });

  it('adds Access-Control-Allow-Origin to real responses for allowed origins only', async () => {
    const ok = await verify({
      ...bearer(browser, { origin: ORIGIN }),
      'x-forwarded-uri': '/text-to-image',
    });
    expect(ok.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    const other = await verify(bearer(browser, { origin: 'https://evil.example' }));
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('cache', () => {
  it('serves repeated verifications from memory and drops a key on change', async () => {
    const { key, secret } = await issueKey(t, account);
    expect((await verify(bearer(secret))).status).toBe(200);
    const before = t.app.keys.verifier.cacheSize().positive;
    expect(before).toBeGreaterThan(0);
    await t.app.keys.service.update(CLI_CALLER, key.id, { scopes: ['usage:read'] });
    // The NOTIFY of the update reaches this process; the next use sees the new scopes.
    await eventually(async () => (await verify(bearer(secret))).status === 403);
    expect((await verify(bearer(secret), '?scope=usage:read')).status).toBe(200);
  });
});
