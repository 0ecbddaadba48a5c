// Who is calling: the principal every authenticated route works with, the scopes it may
// hold, and the middleware that turns `Authorization: Bearer <credential>` into one.
// Capabilities contribute verifiers (keys: API keys; identity: OIDC access tokens); app.ts
// composes them. The 401 body is exactly what go-livepeer operators' clients already expect.
import type { Middleware } from 'koa';
import { Forbidden, Unauthorized } from './errors.ts';
import type { RequestState } from './request-state.ts';
import type { Logger } from './log.ts';

export const SCOPES = [
  'gateway',
  'signer',
  'usage:read',
  'usage:write',
  'billing:read',
  'admin',
] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  /** How the caller proved who it is. */
  via: 'api_key' | 'access_token';
  /** The account that pays and owns what is created. */
  accountId: string;
  /** The OIDC app (client) the credential belongs to, if any. */
  appId: string | null;
  /** The API key used (`key_…`), if any. */
  keyId: string | null;
  /** The OIDC client id that obtained the token, if any. */
  clientId: string | null;
  /** An app's end user (external id) the caller acts for, if any. */
  endUserId: string | null;
  scopes: readonly Scope[];
  /** Browser keys only: allowed `Origin`s and resources; null means unrestricted. */
  allowedOrigins: readonly string[] | null;
  allowedResources: readonly string[] | null;
}

export interface VerifyContext {
  /** The request's Origin header, if a browser sent one. */
  origin: string | null;
  /** The request's logger: refusals are logged with their reason (never the credential). */
  log?: Logger;
}

export interface CredentialVerifier {
  /**
   * Returns null when the credential is not of this verifier's kind (the next one is asked);
   * throws Unauthorized/Forbidden when it is, but is not acceptable.
   */
  verify(credential: string, context: VerifyContext): Promise<Principal | null> | Principal | null;
}

/** The exact 401 every client library of hosted Livepeer gateways already handles. */
export function invalidCredential(): Unauthorized {
  return new Unauthorized('Invalid API key', {
    headers: { 'WWW-Authenticate': 'Bearer realm="tollhouse", error="invalid_token"' },
  });
}

export interface Authenticator {
  /** The principal for an Authorization header value, or a thrown 401/403. */
  authenticate(authorization: string | undefined, context: VerifyContext): Promise<Principal>;
}

export function createAuthenticator(verifiers: readonly CredentialVerifier[]): Authenticator {
  return {
    async authenticate(authorization, context) {
      const credential = bearerCredential(authorization);
      const mistake = authorizationMistake(authorization);
      if (mistake !== null) context.log?.info({ mistake }, `Authorization header: ${mistake}`);
      if (credential === null) throw invalidCredential();
      for (const verifier of verifiers) {
        const principal = await verifier.verify(credential, context);
        if (principal !== null) return principal;
      }
      throw invalidCredential();
    },
  };
}

/** `Bearer <credential>` (scheme case-insensitive, surrounding whitespace ignored) → credential. */
export function bearerCredential(authorization: string | undefined): string | null {
  if (authorization === undefined) return null;
  const match = /^\s*bearer\s+(\S+)\s*$/i.exec(authorization);
  return match?.[1] ?? null;
}

const CANONICAL_BEARER = /^Bearer [^\s"'<]\S*$/;

/**
 * Names the usual client mistakes in an Authorization header, for the log line an operator
 * reads when a customer says "my key does not work". Lenient forms that are still accepted
 * (surrounding whitespace, `bearer` in lower case) are named too, so they can be fixed before a
 * stricter proxy refuses them. Never includes the credential.
 */
export function authorizationMistake(authorization: string | undefined): string | null {
  if (authorization === undefined || authorization === '') return 'missing';
  // The canonical form (every well-behaved client, every request): one test, not ten.
  if (CANONICAL_BEARER.test(authorization)) return null;
  if (/^\s*bearer\s*:/i.test(authorization)) {
    return 'has a colon after the scheme ("Bearer: <key>"); send "Bearer <key>"';
  }
  if (/^\s*th_/.test(authorization)) {
    return 'has the key without a scheme; send "Bearer <key>"';
  }
  const scheme = /^\s*(\S+)/.exec(authorization)?.[1] ?? '';
  if (!/^bearer$/i.test(scheme)) {
    return `uses the "${scheme.slice(0, 20)}" scheme; send "Bearer <key>"`;
  }
  if (/^\s*bearer\s+["'<]/i.test(authorization)) {
    return 'has the key in quotes or angle brackets; send the bare key';
  }
  if (/^\s*bearer\s+\S+\s+\S/i.test(authorization)) {
    return 'has more than one word after "Bearer"; send exactly one key';
  }
  if (/^\s*bearer\s*$/i.test(authorization)) return 'has the scheme but no credential';
  if (!/^bearer \S+$/i.test(authorization)) {
    return 'has extra whitespace around the key (accepted; send "Bearer <key>")';
  }
  if (!authorization.startsWith('Bearer ')) {
    return 'writes the scheme in another case (accepted; "Bearer" is canonical)';
  }
  return null;
}

/** Refusal for one of a restricted credential's rules; `rule` names it in the body. */
export function ruleFailed(rule: string, message: string): Forbidden {
  return new Forbidden(message, { details: { rule } });
}

/**
 * For the front door (and forward-auth): may `principal` act on this resource? `resource` is
 * every name the request is known by (pipeline, model id, stream id); one match is enough.
 * Unrestricted principals (backend keys without a resource list, OIDC tokens) always may.
 */
export function assertResourceAllowed(
  principal: Principal,
  resource: string | readonly string[] | null,
): void {
  const allowed = principal.allowedResources;
  if (allowed === null) return;
  const names = resource === null ? [] : typeof resource === 'string' ? [resource] : resource;
  if (names.length === 0) {
    throw ruleFailed(
      'resource',
      'This key is limited to named resources, and the request names none',
    );
  }
  if (!names.some((name) => allowed.includes(name))) {
    throw ruleFailed(
      'resource',
      `This key does not allow the resource ${JSON.stringify(names[0]?.slice(0, 200))}`,
    );
  }
}

export type AuthState = RequestState & { principal: Principal };

/**
 * Route middleware: authenticates the caller and requires every one of `scopes`
 * (`admin` satisfies any scope). Browser keys pass only where `gateway` is required.
 * Sets `ctx.state.principal`.
 */
export function requireAuth(
  authenticator: Authenticator,
  scopes: readonly Scope[] = [],
): Middleware {
  return async function requireAuth(ctx, next) {
    const state = ctx.state as RequestState;
    const principal = await authenticator.authenticate(ctx.get('authorization') || undefined, {
      origin: ctx.get('origin') || null,
      // A getter: the request logger is made only if a refusal is logged.
      get log() {
        return state.log;
      },
    });
    // Browser keys are public by design (they ship in web pages): they reach only routes that
    // require the gateway scope, never management or reporting APIs.
    if (principal.allowedOrigins !== null && !scopes.includes('gateway')) {
      throw ruleFailed('browser-key-scope', 'Browser keys work only for gateway requests');
    }
    const missing = scopes.filter((s) => !hasScope(principal, s));
    if (missing.length > 0) {
      throw new Forbidden(`This credential lacks the ${missing.join(', ')} scope`);
    }
    (ctx.state as AuthState).principal = principal;
    await next();
  };
}

export function hasScope(principal: Principal, scope: Scope): boolean {
  return principal.scopes.includes('admin') || principal.scopes.includes(scope);
}
