// Apps as oidc-provider sees them: what each kind of app may do, and the client metadata an
// app row becomes. Pure: no I/O.
import { SCOPES } from '../platform/auth.ts';
import type { App, AppKind } from './queries.ts';

export const API_SCOPES = SCOPES;
export const OIDC_SCOPES = ['openid', 'offline_access', 'email', 'profile'] as const;

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';

/** Grant types each kind may be given; an app gets all of them unless it asks for fewer. */
export const KIND_GRANT_TYPES: Record<AppKind, readonly string[]> = {
  // SPAs, native apps and CLIs: no secret, so PKCE (always) and the device flow.
  public: ['authorization_code', 'refresh_token', DEVICE_CODE, TOKEN_EXCHANGE],
  // Server-side web apps keep a secret.
  web: ['authorization_code', 'refresh_token', TOKEN_EXCHANGE],
  // Backends: their own tokens, and tokens for their app users by token exchange.
  machine: ['client_credentials', TOKEN_EXCHANGE],
};

export function isConfidential(kind: AppKind): boolean {
  return kind !== 'public';
}

// The adapter hands oidc-provider an app's metadata on every token request; an App object is
// immutable (a change loads a new one), so its metadata is built once.
const builtMetadata = new WeakMap<App, Record<string, unknown>>();

/** oidc-provider client metadata for an active app (the same object for the same App). */
export function clientMetadata(app: App): Record<string, unknown> {
  let metadata = builtMetadata.get(app);
  if (metadata === undefined) {
    metadata = buildClientMetadata(app);
    builtMetadata.set(app, metadata);
  }
  return metadata;
}

function buildClientMetadata(app: App): Record<string, unknown> {
  const interactive = app.grantTypes.includes('authorization_code');
  return {
    client_id: app.clientId,
    client_name: app.name,
    // The hash stands in for the secret: oidc-provider requires a value for confidential
    // clients, and compareClientSecret (provider.ts) checks presented secrets against hashes.
    ...(isConfidential(app.kind) ? { client_secret: app.secretHashes[0] ?? '' } : {}),
    token_endpoint_auth_method: isConfidential(app.kind) ? 'client_secret_basic' : 'none',
    application_type: 'web',
    grant_types: app.grantTypes,
    response_types: interactive ? ['code'] : [],
    redirect_uris: interactive ? app.redirectUris : [],
    post_logout_redirect_uris: interactive ? app.postLogoutRedirectUris : [],
    // `scope` limits OIDC scopes only; API scopes are limited by the resource server
    // (provider.ts getResourceServerInfo reads tollhouse_scopes).
    ...(app.kind === 'machine' ? {} : { scope: OIDC_SCOPES.join(' ') }),
    tollhouse_scopes: app.scopes,
    tollhouse_app_id: app.id,
    tollhouse_owner_account_id: app.ownerAccountId,
    tollhouse_secret_hashes: app.secretHashes,
    tollhouse_allowed_origins: app.allowedOrigins,
  };
}

// oidc-provider's Client#metadata() builds a fresh snake_case copy of every property on each
// call (a regex per key, ~10 µs), and the token endpoint needs it three or four times per
// request. A Client instance never changes (oidc-provider builds a new one when the app's
// metadata changes), so one copy per instance is enough.
const metadataCache = new WeakMap<object, Record<string, unknown>>();

/** `client.metadata()`, computed once per Client instance. */
export function clientMeta(client: {
  metadata(): Record<string, unknown>;
}): Record<string, unknown> {
  let meta = metadataCache.get(client);
  if (meta === undefined) {
    meta = client.metadata();
    metadataCache.set(client, meta);
  }
  return meta;
}

/** The claims tollhouse adds to an access token of `client`: whom it acts for, and the app. */
export function appTokenClaims(
  client: { metadata(): Record<string, unknown> } | undefined,
  accountId: unknown,
): { account_id: unknown; app_id: unknown } {
  const meta = client === undefined ? {} : clientMeta(client);
  return { account_id: accountId, app_id: meta['tollhouse_app_id'] };
}

/** The account an app's own tokens (client_credentials) act for: the app's owner. */
export function appOwner(client: { metadata(): Record<string, unknown> }): unknown {
  return clientMeta(client)['tollhouse_owner_account_id'];
}

/** The API scopes an app may be given (its tollhouse_scopes metadata). */
export function clientApiScopes(client: { metadata(): Record<string, unknown> }): string[] {
  const scopes = clientMeta(client)['tollhouse_scopes'];
  return Array.isArray(scopes) ? scopes.filter((s): s is string => typeof s === 'string') : [];
}

/** A client tollhouse itself runs (the console): static, public, never shown a consent page. */
export interface FirstPartyClient {
  clientId: string;
  name: string;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  /** The API scopes it may be granted (tollhouse_scopes). */
  apiScopes: readonly string[];
}

/** Static client metadata: a public PKCE client that may ask for its API scopes (the
 * provider's grant for it still withholds `admin` from accounts that are not operators). */
export function firstPartyMetadata(client: FirstPartyClient): Record<string, unknown> {
  return {
    client_id: client.clientId,
    client_name: client.name,
    token_endpoint_auth_method: 'none',
    application_type: 'web',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: client.redirectUris,
    post_logout_redirect_uris: client.postLogoutRedirectUris,
    scope: OIDC_SCOPES.join(' '),
    tollhouse_scopes: client.apiScopes.filter((s) => (API_SCOPES as readonly string[]).includes(s)),
  };
}
