// The token endpoint's busiest request, answered without oidc-provider's request pipeline
// (issue #21): a machine app's backend asking for its own gateway token (client_credentials,
// client_secret_basic, API scopes only). oidc-provider's second Koa application, its parameter
// assembly and its token model cost more than the signature itself (BENCHMARKS.md, identity).
//
// The token and the JSON answer are the ones oidc-provider issues for the same request: the
// same protected header, claims in the same order, lifetime, `jti` alphabet and length, and
// signing key (test/identity/client-credentials.test.ts compares both byte for byte and has
// openid-client verify them). The client is oidc-provider's own Client instance, checked by its
// own methods (grant type, authentication method, the secret comparison of provider.ts).
// Only that one exact request shape is answered here. Anything else, or anything in doubt,
// returns null, and oidc-provider answers it, errors included.
import { createPrivateKey, randomBytes } from 'node:crypto';
import { parse as parseForm } from 'node:querystring';
import { CompactSign } from 'jose';
import type Provider from 'oidc-provider';
import { API_SCOPES, appOwner, appTokenClaims, clientApiScopes } from './clients.ts';
import { SIGNING_ALG } from './signing-keys.ts';
import type { SigningKeySet } from './signing-keys.ts';

export interface ClientCredentialsDeps {
  /** The provider this answers for: its clients, its issuer. */
  provider: Provider;
  /** The provider's keys: oidc-provider signs with the first ES256 key, the active one. */
  keys: SigningKeySet;
  /** The gateway's resource indicator: the token's audience. */
  resource: string;
  accessTokenTtlSeconds: number;
}

/** A token request as it arrived: the Authorization header and the form body. */
export interface TokenRequest {
  authorization: string | undefined;
  body: Buffer;
}

export interface TokenResponse {
  access_token: string;
  expires_in: number;
  scope: string;
  token_type: 'Bearer';
}

export interface ClientCredentials {
  /** The answer oidc-provider would give, or null when oidc-provider must answer. */
  issue(request: TokenRequest): Promise<TokenResponse | null>;
}

const BASIC = /^Basic ([A-Za-z0-9+/]+={0,2})$/;
// oidc-provider's rule for a decoded client id or secret: printable ASCII (VSCHAR).
const VSCHAR = /^[\x20-\x7E]+$/;
const API_SCOPE_SET: ReadonlySet<string> = new Set(API_SCOPES);
const FORM_KEYS = ['grant_type', 'scope'];
// oidc-provider's jti for JWT access tokens: nanoid(), 43 characters of a 64-symbol URL-safe
// alphabet (A–Z a–z 0–9 _ -), each uniform. 33 random bytes give 44 base64url characters whose
// first 43 are each uniform over the same symbols.
const JTI_LENGTH = 43;

export function createClientCredentials(deps: ClientCredentialsDeps): ClientCredentials {
  const { provider, resource, accessTokenTtlSeconds } = deps;
  const jwk = deps.keys.privateJwks[0];
  if (jwk === undefined || jwk.alg !== SIGNING_ALG || typeof jwk.kid !== 'string') {
    throw new Error('the active signing key is not an ES256 key with a kid');
  }
  const key = createPrivateKey({ key: jwk, format: 'jwk' });
  // oidc-provider's JWT.sign: alg, typ, then kid.
  const header = { alg: SIGNING_ALG, typ: 'at+jwt', kid: jwk.kid };
  const issuer = provider.issuer;

  async function issue(request: TokenRequest): Promise<TokenResponse | null> {
    const credentials = basicCredentials(request.authorization);
    if (credentials === null) return null;
    const scope = requestedScope(request.body);
    if (scope === null) return null;
    const client = await provider.Client.find(credentials.clientId);
    if (
      client === undefined ||
      client.clientAuthMethod !== 'client_secret_basic' ||
      !client.grantTypeAllowed('client_credentials') ||
      (client.clientSecretExpiresAt !== undefined && client.clientSecretExpiresAt !== 0) ||
      // tollhouse's machine apps have no `scope` metadata (OIDC scopes are not theirs to ask).
      client.scope !== undefined
    ) {
      return null;
    }
    // A wrong secret is oidc-provider's to refuse (its error, its WWW-Authenticate).
    if (!(await client.compareClientSecret(credentials.secret))) return null;
    // Asking for an API scope the app may not have is oidc-provider's invalid_scope.
    const allowed = clientApiScopes(client);
    if (!scope.every((s) => allowed.includes(s))) return null;

    const now = Math.floor(Date.now() / 1000);
    const scopeText = scope.join(' ');
    // oidc-provider's formats/jwt.js: extra claims first, then these in this order;
    // authorization_details and cnf are absent for this request.
    const payload = {
      ...appTokenClaims(client, appOwner(client)),
      jti: newJti(),
      sub: client.clientId,
      iat: now,
      exp: now + accessTokenTtlSeconds,
      scope: scopeText,
      client_id: client.clientId,
      iss: issuer,
      aud: resource,
    };
    const token = await new CompactSign(Buffer.from(JSON.stringify(payload)))
      .setProtectedHeader(header)
      .sign(key);
    // oidc-provider's buildTokenResponse, in its order.
    return {
      access_token: token,
      expires_in: accessTokenTtlSeconds,
      scope: scopeText,
      token_type: 'Bearer',
    };
  }

  return { issue };
}

function newJti(): string {
  return randomBytes(33).toString('base64url').slice(0, JTI_LENGTH);
}

/**
 * Client id and secret of `Authorization: Basic`, decoded as oidc-provider decodes them (RFC
 * 6749 §2.3.1: form-encoded, so `+` is a space), or null for anything it would refuse.
 */
function basicCredentials(
  authorization: string | undefined,
): { clientId: string; secret: string } | null {
  if (authorization === undefined) return null;
  const match = BASIC.exec(authorization);
  if (match === null || match[1]!.length % 4 !== 0) return null;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  const clientId = formDecoded(decoded.slice(0, colon));
  const secret = formDecoded(decoded.slice(colon + 1));
  if (clientId === null || secret === null) return null;
  return { clientId, secret };
}

function formDecoded(raw: string): string | null {
  try {
    const value = decodeURIComponent(raw.replaceAll('+', '%20'));
    return VSCHAR.test(value) ? value : null;
  } catch {
    return null;
  }
}

/**
 * The API scopes of a body that is exactly `grant_type=client_credentials` and a `scope` of
 * distinct API scopes separated by single spaces, in any order; else null. Resource indicators,
 * OIDC scopes, no scope, repeated or unknown parameters: oidc-provider's.
 */
function requestedScope(body: Buffer): string[] | null {
  const form = parseForm(body.toString('utf8'));
  const keys = Object.keys(form);
  if (keys.length !== 2 || !FORM_KEYS.every((k) => keys.includes(k))) return null;
  const { grant_type: grantType, scope } = form;
  if (grantType !== 'client_credentials' || typeof scope !== 'string') return null;
  const scopes = scope.split(' ');
  if (!scopes.every((s) => API_SCOPE_SET.has(s))) return null;
  if (new Set(scopes).size !== scopes.length) return null;
  return scopes;
}
