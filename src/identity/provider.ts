// The OpenID provider: oidc-provider configured for tollhouse. Everything protocol-shaped is
// oidc-provider's; this file decides policy (which flows, which algorithms, lifetimes, what a
// token says about its caller) and wires storage, accounts and pages into it.
import { hash } from 'node:crypto';
import Provider, { errors, interactionPolicy } from 'oidc-provider';
import type { Configuration, KoaContextWithOIDC } from 'oidc-provider';
import type { Kysely } from 'kysely';
import type { Authenticator } from '../platform/auth.ts';
import type { Database } from '../database.ts';
import { PAGE_HEADER_NAMES, setPageHeaders } from '../platform/html.ts';
import type { Logger } from '../platform/log.ts';
import type { Secrets } from '../platform/secrets.ts';
import { isCleanString } from '../platform/strings.ts';
import { createAdapterFactory } from './adapter.ts';
import {
  deviceInputPage,
  deviceConfirmPage,
  deviceSuccessPage,
  errorPage,
  logoutPage,
  loggedOutPage,
  SIGN_IN_CONTENT_SECURITY_POLICY,
} from './pages.ts';
import { findAccountById } from './queries.ts';
import { ACR_MFA, ACR_VALUES } from './second-factor.ts';
import { SIGNING_ALG } from './signing-keys.ts';
import type { SigningKeySet } from './signing-keys.ts';
import {
  API_SCOPES,
  OIDC_SCOPES,
  appOwner,
  appTokenClaims,
  clientApiScopes,
  clientMeta,
  clientMetadata,
  firstPartyMetadata,
} from './clients.ts';
import type { FirstPartyClient } from './clients.ts';
import type { AppsService } from './service.ts';
import { registerTokenExchange } from './token-exchange.ts';
import type { Exchanged } from './token-exchange.ts';

export interface ProviderSettings {
  publicUrl: string;
  trustProxy: boolean;
  accessTokenTtlSeconds: number;
  /** Issue #18: operators' sessions signed in with one factor sign in again (step-up). */
  requireMfaForAdmins?: boolean;
}

// Lifetimes, in seconds. Codes are single-use and redeemed by the client at once (RFC 6749
// §4.1.2 recommends at most 10 minutes; 60 s leaves margin for slow networks). Device codes:
// the user needs minutes to find a browser and type the code (RFC 8628 §3.2 leaves it to the
// server). Refresh tokens, grants and sessions: two weeks; refresh tokens rotate on every use.
export const TTL = {
  AuthorizationCode: 60,
  DeviceCode: 600,
  IdToken: 3600,
  Interaction: 3600,
  RefreshToken: 14 * 24 * 3600,
  Session: 14 * 24 * 3600,
  Grant: 14 * 24 * 3600,
} as const;

export interface ProviderDeps {
  db: Kysely<Database>;
  log: Logger;
  secrets: Secrets;
  keys: SigningKeySet;
  apps: AppsService;
  authenticator: Authenticator;
  settings: ProviderSettings;
  /** Clients tollhouse runs itself (the console): static, and consent is implied. */
  firstPartyClients?: readonly FirstPartyClient[];
}

export function createProvider(deps: ProviderDeps): Provider {
  const { db, log, secrets, keys, apps, settings } = deps;
  const issuer = `${settings.publicUrl}/oidc`;
  const idBox = secrets.box('oidc-payload-ids');
  const resource = settings.publicUrl;
  const exchanged = new WeakMap<object, Exchanged>();
  const firstParty = new Set((deps.firstPartyClients ?? []).map((c) => c.clientId));

  const configuration: Configuration = {
    adapter: createAdapterFactory({
      db,
      hashId: (id) => secrets.hmac('oidc-payload-ids', id),
      sealId: (id) => idBox.seal(id),
      openId: (sealed) => idBox.open(sealed),
      findClient: async (clientId) => {
        const app = await apps.findActiveByClientId(clientId);
        return app === null ? undefined : clientMetadata(app);
      },
    }),
    jwks: { keys: keys.privateJwks },
    cookies: {
      // Signed with a TOLLHOUSE_SECRET subkey so every replica accepts every other's cookies.
      keys: [secrets.hmac('oidc-cookies', 'v1')],
    },
    claims: {
      // Issue #18 item 4: every ID token says what the sign-in used (amr, RFC 8176) and its
      // level (acr, docs/second-factor.md); both are read from the session, not the account.
      openid: ['sub', 'acr', 'amr'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    scopes: [...OIDC_SCOPES],
    clients: (deps.firstPartyClients ?? []).map(firstPartyMetadata) as never,
    // tollhouse's own console gets a fresh grant on every sign-in instead of a consent page
    // (the operator runs it; asking "allow tollhouse to use tollhouse?" teaches people to click
    // Allow). The grant holds what the account may have now: `admin` only for operators, and
    // recorded as refused for everyone else so no consent prompt asks for it.
    async loadExistingGrant(ctx) {
      const clientId = ctx.oidc.client!.clientId;
      const accountId = ctx.oidc.session!.accountId;
      if (firstParty.has(clientId) && accountId !== undefined) {
        const row = await findAccountById(db, accountId);
        const grant = new ctx.oidc.provider.Grant({ accountId, clientId });
        grant.addOIDCScope(OIDC_SCOPES.join(' '));
        grant.addOIDCClaims(['sub', 'email', 'email_verified', 'name']);
        const admin = row?.is_admin === true && row.status === 'active';
        grant.addResourceScope(
          resource,
          API_SCOPES.filter((s) => admin || s !== 'admin').join(' '),
        );
        if (!admin) grant.rejectResourceScope(resource, 'admin');
        await grant.save();
        return grant;
      }
      const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session!.grantIdFor(clientId);
      return grantId === undefined ? undefined : ctx.oidc.provider.Grant.find(grantId);
    },
    responseTypes: ['code'],
    // Only schemes whose secret we can check against a stored hash: no client_secret_jwt (needs
    // the plaintext secret as an HMAC key) and no HS* id tokens for the same reason.
    clientAuthMethods: ['client_secret_basic', 'none'],
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: SIGNING_ALG,
    },
    enabledJWA: {
      idTokenSigningAlgValues: [SIGNING_ALG],
      userinfoSigningAlgValues: [SIGNING_ALG],
      introspectionSigningAlgValues: [SIGNING_ALG],
      authorizationSigningAlgValues: [SIGNING_ALG],
    },
    // PKCE S256 for every client, confidential ones too (OAuth 2.1, RFC 9700 §2.1.1).
    pkce: { required: () => true },
    rotateRefreshToken: true,
    extraClientMetadata: {
      properties: [
        'tollhouse_app_id',
        'tollhouse_owner_account_id',
        'tollhouse_secret_hashes',
        'tollhouse_allowed_origins',
        'tollhouse_scopes',
      ],
    },
    clientBasedCORS(_ctx, origin, client) {
      const allowed = clientMeta(client)['tollhouse_allowed_origins'];
      return Array.isArray(allowed) && allowed.includes(origin);
    },
    async findAccount(_ctx, sub) {
      const row = await findAccountById(db, sub);
      // A disabled account has no claims and no session: its refresh tokens stop working too.
      if (row === undefined || row.status !== 'active') return undefined;
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            email: row.email,
            email_verified: row.email_verified,
            ...(row.name === null ? {} : { name: row.name }),
          };
        },
      };
    },
    async extraTokenClaims(ctx, token) {
      const minted = exchanged.get(token);
      if (minted !== undefined) return minted.claims;
      const client =
        ctx.oidc.client ?? (await ctx.oidc.provider.Client.find(token.clientId as string));
      // client-credentials.ts issues the same claims for its tokens.
      const accountId =
        token.kind === 'ClientCredentials'
          ? client === undefined
            ? undefined
            : appOwner(client)
          : (token as { accountId?: string }).accountId;
      return appTokenClaims(client, accountId);
    },
    ttl: {
      ...TTL,
      AccessToken: (_ctx, token) =>
        exchanged.get(token)?.ttlSeconds ?? settings.accessTokenTtlSeconds,
      ClientCredentials: settings.accessTokenTtlSeconds,
    },
    interactions: {
      policy: signInPolicy(db, settings.requireMfaForAdmins === true),
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    // Issue #18: what a sign-in used (docs/second-factor.md); apps ask for ACR_MFA to get it.
    acrValues: [...ACR_VALUES],
    features: {
      devInteractions: { enabled: false },
      // The gateway's verifier checks bearer JWTs only; a DPoP-bound token it accepted without
      // the proof would be a downgrade, so sender-constrained tokens are not offered.
      dPoP: { enabled: false },
      // Not offered until a client needs it: discovery should list only what is tested.
      pushedAuthorizationRequests: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      deviceFlow: {
        enabled: true,
        // base-20 without vowels, 8 characters: RFC 8628 §6.1's example, ~34 bits.
        charset: 'base-20',
        mask: '****-****',
        userCodeInputSource(ctx, form, _out, err) {
          ctx.type = 'html';
          ctx.body = deviceInputPage(form, err === undefined ? null : describeDeviceError(err));
        },
        userCodeConfirmSource(ctx, form, client, _deviceInfo, userCode) {
          ctx.type = 'html';
          ctx.body = deviceConfirmPage(form, client.clientName ?? client.clientId, userCode);
        },
        successSource(ctx) {
          ctx.type = 'html';
          ctx.body = deviceSuccessPage(ctx.oidc.client?.clientName ?? 'the device');
        },
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource(ctx, form) {
          ctx.type = 'html';
          ctx.body = logoutPage(form, ctx.oidc.client?.clientName ?? null);
        },
        postLogoutSuccessSource(ctx) {
          ctx.type = 'html';
          ctx.body = loggedOutPage(ctx.oidc.client?.clientName ?? null);
        },
      },
      resourceIndicators: {
        enabled: true,
        // Requests for API scopes get a JWT access token for the gateway without naming it;
        // requests for OIDC scopes only get an opaque token for userinfo.
        defaultResource(ctx) {
          const requested = String(ctx.oidc.params?.scope ?? '').split(' ');
          return requested.some((s) => (API_SCOPES as readonly string[]).includes(s))
            ? resource
            : undefined;
        },
        useGrantedResource: () => true,
        getResourceServerInfo(ctx, indicator, client) {
          if (indicator !== resource) throw new errors.InvalidTarget();
          const allowed = clientApiScopes(client);
          // Asking for an API scope the app may not have is an error, not a silent downgrade.
          const refused = String(ctx.oidc.params?.scope ?? '')
            .split(' ')
            .filter((s) => (API_SCOPES as readonly string[]).includes(s) && !allowed.includes(s));
          if (refused.length > 0) {
            throw new errors.InvalidScope('requested scope is not allowed', refused.join(' '));
          }
          return {
            scope: allowed.join(' '),
            audience: resource,
            accessTokenTTL: settings.accessTokenTtlSeconds,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: SIGNING_ALG } },
          };
        },
      },
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = errorPage(String(out.error), String(out.error_description ?? ''));
    },
  };

  const provider = new Provider(issuer, configuration);
  provider.proxy = settings.trustProxy;
  // oidc-provider renders some pages itself (device code, logout, errors, form_post) and
  // writes them straight to the socket: the sign-in pages' headers are set before it runs
  // (its form_post page adds its script's hash to this CSP) and kept only on HTML answers.
  provider.use(async function pageHeaders(ctx, next) {
    setPageHeaders(ctx, SIGN_IN_CONTENT_SECURITY_POLICY);
    await next();
    if (ctx.response.is('html') === false) {
      for (const name of PAGE_HEADER_NAMES) ctx.remove(name);
    }
  });

  // Client secrets are stored as keyed hashes (tollhouse_secret_hashes, the current and, during
  // a rotation's grace period, the previous one), so compare hashes instead of plaintext. A
  // machine client presents the same secret on every token request: once a secret has matched,
  // its SHA-256 (one-shot, several times cheaper than the HMAC; the secret has 256 random bits,
  // so the digest reveals nothing) is remembered on this Client instance. oidc-provider builds a
  // new instance whenever the app's metadata changes (rotation, grace period over), so nothing
  // is remembered past the hashes it was checked against.
  const matchedDigests = new WeakMap<object, Set<string>>();
  provider.Client.prototype.compareClientSecret = function compareClientSecret(
    this: InstanceType<Provider['Client']>,
    actual: string,
  ) {
    if (typeof actual !== 'string') return Promise.resolve(false);
    const digest = hash('sha256', actual, 'base64url');
    const matched = matchedDigests.get(this);
    if (matched?.has(digest)) return Promise.resolve(true);
    const hashes = clientMeta(this)['tollhouse_secret_hashes'];
    if (!Array.isArray(hashes)) return Promise.resolve(false);
    const presented = secrets.hmac('app-client-secrets', actual);
    const ok = hashes.some((h) => constantEquals(h, presented));
    // At most one entry per valid secret (two during a rotation's grace period).
    if (ok) matchedDigests.set(this, new Set(matched).add(digest));
    return Promise.resolve(ok);
  };

  // oidc-provider finds its cached Client instance for a dynamic client by the SHA-256 of the
  // metadata's JSON, stringified and hashed again on every lookup, so on every token request.
  // The apps service hands out the same App object until the app changes (NOTIFY) or its
  // cache entry expires, and clientMetadata builds one metadata object per App: the instance
  // is remembered per metadata object instead. A new App is a new object, so a change still
  // reaches oidc-provider's own lookup, which decides.
  const findClient = provider.Client.find.bind(provider.Client);
  const byMetadata = new WeakMap<object, InstanceType<Provider['Client']>>();
  provider.Client.find = async function find(id: string) {
    if (typeof id !== 'string' || id === '' || firstParty.has(id) || !isCleanString(id)) {
      return findClient(id);
    }
    const app = await apps.findActiveByClientId(id);
    // What oidc-provider's lookup answers then too (client ID metadata documents are off),
    // without asking the database a second time for an unknown client.
    if (app === null) return undefined;
    const metadata = clientMetadata(app);
    const known = byMetadata.get(metadata);
    if (known !== undefined) return known;
    const client = await findClient(id);
    // Only an instance built from this very metadata: the apps service replaces a cached App
    // with a new object and never brings an old one back, so the same object before and after
    // means oidc-provider's lookup in between saw it too.
    if (client !== undefined && (await apps.findActiveByClientId(id)) === app) {
      byMetadata.set(metadata, client);
    }
    return client;
  };

  registerTokenExchange(provider, {
    apps,
    authenticator: deps.authenticator,
    resource,
    accessTokenTtlSeconds: settings.accessTokenTtlSeconds,
    exchanged,
  });

  provider.on('server_error', (_ctx: KoaContextWithOIDC, error: Error) => {
    log.error({ err: error }, 'OIDC provider error');
  });
  return provider;
}

/**
 * oidc-provider's prompts, plus step-up: an app that asks for `acr_values` naming the mfa acr
 * while the browser's session was signed in with one factor gets the login prompt again, and
 * the sign-in pages ask for the second factor only (second-factor-flow.ts).
 */
export const STEP_UP_REASON = 'mfa_acr_requested';

function signInPolicy(db: Kysely<Database>, requireMfaForAdmins: boolean) {
  const { Check, base } = interactionPolicy;
  const policy = base();
  policy.get('login')!.checks.add(
    new Check(STEP_UP_REASON, 'a second factor is required', async (ctx) => {
      const { oidc } = ctx;
      const accountId = oidc.session?.accountId;
      if (accountId === undefined || oidc.acr === ACR_MFA) return Check.NO_NEED_TO_PROMPT;
      const requested = String(oidc.params?.acr_values ?? '').split(' ');
      if (requested.includes(ACR_MFA)) return Check.REQUEST_PROMPT;
      // A session an operator opened before REQUIRE_MFA_FOR_ADMINS was turned on.
      if (requireMfaForAdmins && (await findAccountById(db, accountId))?.is_admin === true) {
        return Check.REQUEST_PROMPT;
      }
      return Check.NO_NEED_TO_PROMPT;
    }),
  );
  return policy;
}

function constantEquals(a: unknown, b: string): boolean {
  if (typeof a !== 'string' || a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function describeDeviceError(err: Error): string {
  const name = (err as { name?: string }).name;
  if (name === 'NoCodeError') return 'Enter the code shown on your device.';
  if (name === 'AbortedError') return 'The request was cancelled.';
  return 'That code is not valid or has expired. Check the code on your device and try again.';
}
