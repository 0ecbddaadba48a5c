// Bearer JWT access tokens (RFC 9068) → principal, verified locally against the provider's
// own public keys: no database round trip on the hot path. Anything that is not a JWT (an API
// key, `th_…`) is left to the next verifier. The keys are replaced when they rotate, and the
// tokens of a disabled account are refused at once (both pushed by NOTIFY, see index.ts): a
// JWT cannot be revoked, but the one place that accepts it can stop doing so.
import { createLocalJWKSet, errors as joseErrors, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import { SCOPES, invalidCredential } from '../platform/auth.ts';
import type { CredentialVerifier, Principal, Scope } from '../platform/auth.ts';
import { SIGNING_ALG } from './signing-keys.ts';

// Three base64url segments, the first starting with `eyJ` (`{"` encoded): a compact JWS.
const COMPACT_JWS = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
// Clock skew tolerated between replicas (and the machines that mint and check tokens).
const CLOCK_TOLERANCE_SECONDS = 5;
// The scopes that spend money: held back from an account whose address is not confirmed.
const UNVERIFIED_WITHHELD = new Set<string>(['gateway', 'signer']);

export interface AccessTokenVerifier extends CredentialVerifier {
  /** Verifies with these public keys from now on (the live JWKS after a rotation). */
  setKeys(publicJwks: JWK[]): void;
}

export function createAccessTokenVerifier(input: {
  issuer: string;
  audience: string;
  publicJwks: JWK[];
  /** True while the account is disabled: its tokens are refused even though they verify. */
  isAccountDisabled(accountId: string): boolean;
  /** True while the account's address is not confirmed: its tokens carry no gateway or signer
   * scope (issue #18), whatever they were issued with, and gain them once it is. */
  isAccountUnverified?(accountId: string): boolean;
  /**
   * Why a token must be refused although it verifies — what it was made from is gone (its
   * key revoked or past its grace, its app or app user disabled) — or null.
   */
  parentRefusal(principal: Principal): Promise<string | null> | string | null;
}): AccessTokenVerifier {
  let keys = createLocalJWKSet({ keys: input.publicJwks });
  const known = new Set<string>(SCOPES);
  return {
    setKeys(publicJwks) {
      keys = createLocalJWKSet({ keys: publicJwks });
    },
    async verify(credential, context) {
      if (credential.startsWith('th_') || !COMPACT_JWS.test(credential)) return null;
      let payload;
      try {
        ({ payload } = await jwtVerify(credential, keys, {
          issuer: input.issuer,
          audience: input.audience,
          algorithms: [SIGNING_ALG],
          typ: 'at+jwt',
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          requiredClaims: ['exp', 'iat', 'sub', 'client_id'],
        }));
      } catch (error) {
        if (error instanceof joseErrors.JOSEError || error instanceof TypeError) {
          throw invalidCredential();
        }
        throw error;
      }
      const accountId = payload['account_id'];
      if (typeof accountId !== 'string') throw invalidCredential();
      if (input.isAccountDisabled(accountId)) {
        context.log?.info({ accountId }, 'access token refused: account disabled');
        throw invalidCredential();
      }
      const scope = typeof payload['scope'] === 'string' ? payload['scope'] : '';
      const unverified = input.isAccountUnverified?.(accountId) === true;
      const principal: Principal = {
        via: 'access_token',
        accountId,
        appId: typeof payload['app_id'] === 'string' ? payload['app_id'] : null,
        keyId: typeof payload['key_id'] === 'string' ? payload['key_id'] : null,
        clientId: typeof payload['client_id'] === 'string' ? payload['client_id'] : null,
        endUserId: typeof payload['end_user_id'] === 'string' ? payload['end_user_id'] : null,
        scopes: scope
          .split(' ')
          .filter((s): s is Scope => known.has(s) && !(unverified && UNVERIFIED_WITHHELD.has(s))),
        allowedOrigins: null,
        allowedResources: null,
      };
      const refusal = await input.parentRefusal(principal);
      if (refusal !== null) {
        context.log?.info(
          { accountId, keyId: principal.keyId, appId: principal.appId },
          `access token refused: ${refusal}`,
        );
        throw invalidCredential();
      }
      return principal;
    },
  };
}
