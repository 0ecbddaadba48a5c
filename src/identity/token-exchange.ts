// OAuth 2.0 Token Exchange (RFC 8693) at the token endpoint, two uses:
// (a) an API key (subject_token_type urn:tollhouse:params:oauth:token-type:api_key) becomes a
//     short-lived JWT access token carrying the key's account and (at most) its scopes;
// (b) a machine client acting for one of its app users (subject_token_type
//     urn:tollhouse:params:oauth:token-type:app_user, subject_token = the app's external id for
//     the user) gets that user's access token; the user is created on first use.
// The client authenticates as at any token request; errors are oidc-provider's OAuth errors.
import { errors } from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type Provider from 'oidc-provider';
import type { Authenticator } from '../platform/auth.ts';
import { API_SCOPES, TOKEN_EXCHANGE, clientApiScopes, clientMeta } from './clients.ts';
import type { AppsService } from './service.ts';
import { SIGNING_ALG } from './signing-keys.ts';

export const API_KEY_TOKEN_TYPE = 'urn:tollhouse:params:oauth:token-type:api_key';
export const APP_USER_TOKEN_TYPE = 'urn:tollhouse:params:oauth:token-type:app_user';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

// An access token minted from an API key is a convenience for clients that want a JWT; it is
// kept short so revoking the key takes effect quickly (the JWT itself cannot be revoked).
export const API_KEY_EXCHANGE_TTL_SECONDS = 300;
// External ids are the app's own user ids (uuids, database keys, emails): bounded for storage.
const MAX_EXTERNAL_ID_LENGTH = 255;

export interface Exchanged {
  claims: Record<string, unknown>;
  ttlSeconds: number;
}

export interface TokenExchangeDeps {
  apps: AppsService;
  authenticator: Authenticator;
  resource: string;
  accessTokenTtlSeconds: number;
  /** Tokens minted here → their extra claims and lifetime (read by extraTokenClaims/ttl). */
  exchanged: WeakMap<object, Exchanged>;
}

const PARAMETERS = [
  'subject_token',
  'subject_token_type',
  'requested_token_type',
  'scope',
  'resource',
  'audience',
];

export function registerTokenExchange(provider: Provider, deps: TokenExchangeDeps): void {
  provider.registerGrantType(
    TOKEN_EXCHANGE,
    async function tokenExchange(ctx: KoaContextWithOIDC) {
      const params = ctx.oidc.params as Record<string, string | undefined>;
      const client = ctx.oidc.client;
      if (client === undefined) throw new errors.InvalidClient('client authentication failed');
      const subjectToken = params.subject_token;
      const subjectType = params.subject_token_type;
      if (!subjectToken)
        throw new errors.InvalidRequest('missing required parameter subject_token');
      if (!subjectType) {
        throw new errors.InvalidRequest('missing required parameter subject_token_type');
      }
      if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
        throw new errors.InvalidRequest('only access tokens can be requested');
      }
      if (params.resource && params.resource !== deps.resource) throw new errors.InvalidTarget();
      if (params.audience && params.audience !== deps.resource) throw new errors.InvalidTarget();
      const requested = params.scope ? params.scope.split(' ').filter(Boolean) : null;
      const meta = clientMeta(client);

      let exchanged: Exchanged;
      let sub: string;
      let scopes: string[];
      if (subjectType === API_KEY_TOKEN_TYPE) {
        let principal;
        try {
          principal = await deps.authenticator.authenticate(`Bearer ${subjectToken}`, {
            origin: null,
          });
        } catch {
          throw new errors.InvalidGrant('subject_token is not a valid API key');
        }
        if (principal.via !== 'api_key') {
          throw new errors.InvalidGrant('subject_token is not a valid API key');
        }
        scopes = narrow(requested, principal.scopes);
        sub = principal.accountId;
        exchanged = {
          ttlSeconds: API_KEY_EXCHANGE_TTL_SECONDS,
          claims: {
            account_id: principal.accountId,
            app_id: principal.appId,
            key_id: principal.keyId,
          },
        };
      } else if (subjectType === APP_USER_TOKEN_TYPE) {
        if (!meta['tollhouse_app_id'] || client.tokenEndpointAuthMethod === 'none') {
          throw new errors.UnauthorizedClient('only confidential apps may act for their users');
        }
        if (subjectToken.length > MAX_EXTERNAL_ID_LENGTH) {
          throw new errors.InvalidRequest('subject_token (the external user id) is too long');
        }
        const user = await deps.apps.ensureAppUser(String(meta['tollhouse_app_id']), subjectToken);
        if (user.status !== 'active') throw new errors.InvalidGrant('the app user is disabled');
        // Acting for an end user never carries the app's admin rights.
        const allowed = clientApiScopes(client).filter((s) => s !== 'admin');
        scopes = narrow(requested, allowed);
        sub = user.id;
        exchanged = {
          ttlSeconds: deps.accessTokenTtlSeconds,
          claims: {
            account_id: meta['tollhouse_owner_account_id'],
            app_id: meta['tollhouse_app_id'],
            end_user_id: user.externalId,
            // RFC 8693 §4.1: the party acting on the subject's behalf.
            act: { sub: client.clientId },
          },
        };
      } else {
        throw new errors.InvalidRequest('unsupported subject_token_type');
      }

      const token = new provider.AccessToken({
        accountId: sub,
        client,
        scope: scopes.join(' ') || undefined,
      } as never);
      token.resourceServer = new provider.ResourceServer(deps.resource, {
        scope: scopes.join(' '),
        audience: deps.resource,
        accessTokenTTL: exchanged.ttlSeconds,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: SIGNING_ALG } },
      });
      deps.exchanged.set(token, exchanged);
      ctx.oidc.entity('AccessToken', token);
      const value = await token.save();
      ctx.body = {
        access_token: value,
        issued_token_type: ACCESS_TOKEN_TYPE,
        token_type: 'Bearer',
        expires_in: token.expiration,
        scope: scopes.join(' ') || undefined,
      };
    },
    PARAMETERS,
  );
}

/** The requested scopes if all are allowed, else invalid_scope; nothing requested → all allowed. */
function narrow(requested: string[] | null, allowed: readonly string[]): string[] {
  const granted = new Set(allowed.includes('admin') ? API_SCOPES : allowed);
  if (requested === null) return [...allowed];
  const refused = requested.filter((s) => !granted.has(s as (typeof API_SCOPES)[number]));
  if (refused.length > 0)
    throw new errors.InvalidScope('requested scope is not allowed', refused.join(' '));
  return requested;
}
