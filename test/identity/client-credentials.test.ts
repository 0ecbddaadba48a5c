// The token endpoint's client_credentials fast path (issue #21) against oidc-provider itself:
// the same provider instance, mounted bare on a server of its own, answers every request here
// too. The fast path's tokens must be oidc-provider's byte for byte (same clock, same jti), and
// every other request must get oidc-provider's answer.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { discover, startIdentityApp } from './support.ts';
import type { IdentityTestApp } from './support.ts';
import { accountWithPassword } from '../support/fixtures.ts';

let t: IdentityTestApp;
let ownerId: string;
let bare: http.Server;
let bareIssuer: string;
let machine: { clientId: string; secret: string; appId: string };
let web: { clientId: string; secret: string };
// oidc-provider's own issuance emits events; the fast path does not (nothing in tollhouse
// listens to them), which tells who answered.
let issuedByProvider = 0;

beforeAll(async () => {
  t = await startIdentityApp();
  ownerId = (await accountWithPassword(t, 'owner@example.com', { admin: true })).id;
  const m = await t.app.identity.apps.create(
    {
      name: 'Backend',
      kind: 'machine',
      ownerAccountId: ownerId,
      scopes: ['gateway', 'usage:read'],
    },
    { id: 'test' },
  );
  machine = { clientId: m.app.clientId, secret: m.clientSecret!, appId: m.app.id };
  const w = await t.app.identity.apps.create(
    {
      name: 'Web',
      kind: 'web',
      ownerAccountId: ownerId,
      redirectUris: ['http://127.0.0.1:9/cb'],
      scopes: ['gateway'],
    },
    { id: 'test' },
  );
  web = { clientId: w.app.clientId, secret: w.clientSecret! };
  // oidc-provider alone, as its README mounts it, on the app's own provider instance.
  const handle = t.app.identity.provider.callback();
  bare = http.createServer((req, res) => {
    (req as { originalUrl?: string }).originalUrl = req.url;
    req.url = req.url!.slice('/oidc'.length) || '/';
    void handle(req, res);
  });
  await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
  bareIssuer = `http://127.0.0.1:${(bare.address() as AddressInfo).port}/oidc`;
  // A JWT is `issued`; an opaque token (no API scope asked for) is `saved`.
  t.app.identity.provider.on('client_credentials.issued', () => issuedByProvider++);
  t.app.identity.provider.on('client_credentials.saved', () => issuedByProvider++);
});
afterAll(async () => {
  await new Promise((resolve) => bare.close(resolve));
  await t.close();
});
afterEach(() => {
  vi.useRealTimers();
});

function basic(id: string, secret: string) {
  return `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
}

interface Answer {
  status: number;
  text: string;
  headers: Headers;
}

async function post(
  issuer: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body,
  });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

/** The same request to tollhouse and to oidc-provider alone; how many tokens the provider
 * issued itself for tollhouse's. */
async function both(body: string, headers: Record<string, string> = {}) {
  const before = issuedByProvider;
  const ours = await post(t.issuer, body, headers);
  const providerIssued = issuedByProvider - before;
  const theirs = await post(bareIssuer, body, headers);
  return { ours, theirs, providerIssued };
}

const machineAuth = () => ({ authorization: basic(machine.clientId, machine.secret) });

async function publicJwks() {
  const response = await fetch(`${t.issuer}/jwks`);
  return createLocalJWKSet((await response.json()) as { keys: JWK[] });
}

describe('client_credentials fast path', () => {
  it("issues oidc-provider's token byte for byte (same clock and jti) and the same answer", async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-12-03T12:00:00.250Z'));
    const before = issuedByProvider;
    const ours = await post(t.issuer, 'grant_type=client_credentials&scope=gateway', machineAuth());
    expect(ours.status).toBe(200);
    expect(issuedByProvider).toBe(before); // answered by the fast path
    const ourToken = (JSON.parse(ours.text) as { access_token: string }).access_token;
    const { jti } = decodeJwt(ourToken);
    expect(jti).toMatch(/^[A-Za-z0-9_-]{43}$/);

    // oidc-provider with the fast path's jti, at the same instant.
    const ClientCredentials = t.app.identity.provider.ClientCredentials;
    const generate = Object.getOwnPropertyDescriptor(
      ClientCredentials.prototype,
      'generateTokenId',
    )!;
    Object.defineProperty(ClientCredentials.prototype, 'generateTokenId', {
      ...generate,
      // The original also decides the token's format; only its value is replaced.
      value(this: object) {
        (generate.value as (this: object) => string).call(this);
        return jti;
      },
    });
    let theirs: Answer;
    try {
      theirs = await post(bareIssuer, 'grant_type=client_credentials&scope=gateway', machineAuth());
    } finally {
      Object.defineProperty(ClientCredentials.prototype, 'generateTokenId', generate);
    }
    expect(theirs.status).toBe(200);
    expect(issuedByProvider).toBe(before + 1);
    const theirToken = (JSON.parse(theirs.text) as { access_token: string }).access_token;

    // Header and payload, byte for byte; ES256 signatures are randomised, so each is verified.
    const [ourHeader, ourPayload] = ourToken.split('.');
    const [theirHeader, theirPayload] = theirToken.split('.');
    expect(ourHeader).toBe(theirHeader);
    expect(ourPayload).toBe(theirPayload);
    expect(ours.text.replace(ourToken, 'TOKEN')).toBe(theirs.text.replace(theirToken, 'TOKEN'));
    expect(ours.headers.get('content-type')).toBe(theirs.headers.get('content-type'));
    expect(ours.headers.get('cache-control')).toBe(theirs.headers.get('cache-control'));
    expect(ours.headers.get('content-length')).toBe(theirs.headers.get('content-length'));
    // Every header oidc-provider sends (CORS, caching, type); tollhouse adds its request id,
    // and each server has its own keep-alive.
    const listed = (a: Answer) =>
      [...a.headers].filter(
        ([name]) => !['x-request-id', 'date', 'connection', 'keep-alive'].includes(name),
      );
    expect(listed(ours)).toEqual(listed(theirs));

    const keys = await publicJwks();
    for (const token of [ourToken, theirToken]) {
      const { payload, protectedHeader } = await jwtVerify(token, keys, {
        issuer: t.issuer,
        audience: t.url,
        typ: 'at+jwt',
        currentDate: new Date('2026-12-03T12:00:01Z'),
      });
      expect(protectedHeader.alg).toBe('ES256');
      expect(payload).toMatchObject({
        sub: machine.clientId,
        client_id: machine.clientId,
        account_id: ownerId,
        app_id: machine.appId,
        scope: 'gateway',
        iat: Date.parse('2026-12-03T12:00:00Z') / 1000,
      });
    }
  });

  it('answers openid-client, and its tokens pass the gateway verifier', async () => {
    const before = issuedByProvider;
    const config = await discover(t, machine.clientId, machine.secret);
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'usage:read gateway' });
    expect(issuedByProvider).toBe(before);
    expect(tokens.token_type).toBe('bearer');
    expect(tokens.scope).toBe('usage:read gateway');
    expect(tokens.expires_in).toBeGreaterThan(0);
    await jwtVerify(tokens.access_token, await publicJwks(), {
      issuer: t.issuer,
      audience: t.url,
      typ: 'at+jwt',
    });
    const principal = await t.app.authenticator.authenticate(`Bearer ${tokens.access_token}`, {
      origin: null,
    });
    expect(principal).toMatchObject({
      via: 'access_token',
      accountId: ownerId,
      appId: machine.appId,
      clientId: machine.clientId,
      scopes: ['usage:read', 'gateway'],
    });
  });

  // Every request the fast path does not take as its own: oidc-provider's status, body and
  // WWW-Authenticate, whatever it is.
  const refused: Array<[string, () => { body: string; headers?: Record<string, string> }]> = [
    [
      'a wrong secret',
      () => ({
        body: 'grant_type=client_credentials&scope=gateway',
        headers: { authorization: basic(machine.clientId, `${machine.secret}x`) },
      }),
    ],
    [
      'an unknown client',
      () => ({
        body: 'grant_type=client_credentials&scope=gateway',
        headers: { authorization: basic('no-such-client', machine.secret) },
      }),
    ],
    [
      'a client that may not use the grant',
      () => ({
        body: 'grant_type=client_credentials&scope=gateway',
        headers: { authorization: basic(web.clientId, web.secret) },
      }),
    ],
    [
      'an unknown grant type',
      () => ({ body: 'grant_type=bogus&scope=gateway', headers: machineAuth() }),
    ],
    [
      'another grant type',
      () => ({
        body: 'grant_type=authorization_code&code=x&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb',
        headers: machineAuth(),
      }),
    ],
    [
      'a scope the app may not have',
      () => ({
        body: 'grant_type=client_credentials&scope=admin',
        headers: machineAuth(),
      }),
    ],
    [
      'an invalid scope string',
      () => ({
        body: 'grant_type=client_credentials&scope=gateway%20%20usage%3Aread',
        headers: machineAuth(),
      }),
    ],
    [
      'a foreign resource indicator',
      () => ({
        body: 'grant_type=client_credentials&scope=gateway&resource=https%3A%2F%2Fexample.com%2F',
        headers: machineAuth(),
      }),
    ],
    [
      'a relative resource indicator',
      () => ({
        body: 'grant_type=client_credentials&scope=gateway&resource=gateway',
        headers: machineAuth(),
      }),
    ],
    [
      'a repeated grant_type',
      () => ({
        body: 'grant_type=client_credentials&grant_type=client_credentials&scope=gateway',
        headers: machineAuth(),
      }),
    ],
    [
      'a repeated scope',
      () => ({
        body: 'grant_type=client_credentials&scope=gateway&scope=gateway',
        headers: machineAuth(),
      }),
    ],
    [
      'client_secret_post',
      () => ({
        body: `grant_type=client_credentials&scope=gateway&client_id=${machine.clientId}&client_secret=${machine.secret}`,
      }),
    ],
    [
      'a malformed Basic header',
      () => ({
        body: 'grant_type=client_credentials&scope=gateway',
        headers: { authorization: 'Basic !!!' },
      }),
    ],
    [
      'Basic without a secret',
      () => ({
        body: 'grant_type=client_credentials&scope=gateway',
        headers: { authorization: basic(machine.clientId, '') },
      }),
    ],
    [
      'a percent-encoded secret',
      () => ({
        body: 'grant_type=client_credentials&scope=gateway',
        headers: { authorization: basic(machine.clientId, `%7E${machine.secret}`) },
      }),
    ],
    [
      'a NUL in the client id',
      () => ({
        body: 'grant_type=client_credentials&scope=gateway',
        headers: { authorization: basic('a%00b', machine.secret) },
      }),
    ],
    [
      'a body that is not a form',
      () => ({
        body: '{"grant_type":"client_credentials"}',
        headers: { ...machineAuth(), 'content-type': 'application/json' },
      }),
    ],
  ];
  it.each(refused)('gives oidc-provider’s answer to %s', async (_name, make) => {
    const { body, headers } = make();
    const { ours, theirs, providerIssued } = await both(body, headers);
    expect(providerIssued).toBe(0);
    expect(ours.status).toBeGreaterThanOrEqual(400);
    expect({ status: ours.status, body: JSON.parse(ours.text) as unknown }).toEqual({
      status: theirs.status,
      body: JSON.parse(theirs.text) as unknown,
    });
    expect(ours.headers.get('www-authenticate')).toBe(theirs.headers.get('www-authenticate'));
  });

  // Valid requests of another shape: oidc-provider issues the token (the body is replayed to it).
  const elsewhere: Array<[string, string, Record<string, string>]> = [
    [
      'the gateway named as resource',
      'grant_type=client_credentials&scope=gateway&resource=RESOURCE',
      {},
    ],
    ['no scope', 'grant_type=client_credentials', {}],
    ['an unknown scope', 'grant_type=client_credentials&scope=nope', {}],
    ['an OIDC scope', 'grant_type=client_credentials&scope=openid', {}],
    ['an API scope and an OIDC scope', 'grant_type=client_credentials&scope=gateway%20openid', {}],
    ['a secret in the body too', 'grant_type=client_credentials&scope=gateway&client_secret=x', {}],
    [
      'a charset other than UTF-8',
      'grant_type=client_credentials&scope=gateway',
      {
        'content-type': 'application/x-www-form-urlencoded; charset=iso-8859-1',
      },
    ],
    ['an unknown parameter', 'grant_type=client_credentials&scope=gateway&foo=bar', {}],
  ];
  it.each(elsewhere)('leaves a request with %s to oidc-provider', async (_name, form, extra) => {
    const body = form.replace('RESOURCE', encodeURIComponent(t.url));
    const { ours, theirs, providerIssued } = await both(body, { ...machineAuth(), ...extra });
    expect(providerIssued).toBe(1);
    expect(ours.status).toBe(theirs.status);
    const [a, b] = [ours, theirs].map((x) => JSON.parse(x.text) as Record<string, unknown>);
    expect(Object.keys(a!)).toEqual(Object.keys(b!));
    expect({ ...a, access_token: null }).toEqual({ ...b, access_token: null });
  });
});
