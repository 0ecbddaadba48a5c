// Sign in with an upstream OpenID provider (issue #18 item 3): Google, GitHub through an
// OIDC-compatible app, Keycloak, another tollhouse… configured by the operator
// (UPSTREAM_OIDC_PROVIDERS). openid-client does the protocol: discovery, PKCE, state, nonce,
// and the ID token's checks.
//
// Linking rules, as Keycloak's and Logto's defaults: an upstream identity is its (provider,
// sub), never its e-mail. The first sign-in of an unknown sub joins the account with that
// address only when the provider says it verified the address; an unverified address never
// links. Without such an account, one is created where the sign-up policy lets anyone sign up.
//
// A flow is a row keyed by a hash of its OAuth `state`, which is also the starting browser's
// cookie: the callback is used once, by that browser, within FLOW_TTL_MS.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import * as oidc from 'openid-client';
import { recordAudit } from '../platform/audit.ts';
import type { Clock } from '../platform/clock.ts';
import type { UpstreamProviderSetting } from '../config.ts';
import type { Database } from '../database.ts';
import { AppError, Conflict, NotFound } from '../platform/errors.ts';
import type { AppErrorOptions } from '../platform/errors.ts';
import { newId } from '../platform/ids.ts';
import type { Logger } from '../platform/log.ts';
import type { Secrets } from '../platform/secrets.ts';
import {
  findAccountByEmail,
  findAccountByIdForUpdate,
  insertAccount,
  toAccount,
} from './queries.ts';
import type { Account } from './queries.ts';
import { ACCOUNTS_CHANNEL, checkEmail, checkName } from './service.ts';
import type { SignupPolicy } from './onboarding.ts';
import {
  consumeUpstreamFlow,
  deleteExpiredUpstreamFlows,
  deleteIdentityById,
  findIdentityBySubject,
  findLiveUpstreamFlow,
  insertIdentity,
  insertUpstreamFlow,
  listIdentitiesByAccount,
  startUpstreamFlow,
  updateIdentitySeen,
} from './upstream-queries.ts';
import type { UpstreamFlowRow } from './upstream-table.ts';

/** Ten minutes to sign in at the provider, as oidc-provider's own interactions allow. */
export const FLOW_TTL_MS = 10 * 60_000;
// Metadata is re-read hourly, so a provider's key or endpoint change is picked up.
const DISCOVERY_TTL_MS = 3_600_000;
const HTTP_TIMEOUT_SECONDS = 10;
const DEFAULT_SCOPES = 'openid email profile';
const STATE_HASH_PURPOSE = 'upstream-state';
const UNIQUE_VIOLATION = '23505';

export const UPSTREAM_CALLBACK_PATH = (providerId: string) => `/upstream/${providerId}/callback`;
export const UPSTREAM_LINK_PATH = '/upstream/link';

/** Why an upstream sign-in or link did not happen; `title` heads the page that says so. */
export class UpstreamRefused extends AppError {
  readonly title: string;
  constructor(
    status: number,
    code: string,
    title: string,
    message: string,
    options?: AppErrorOptions,
  ) {
    super(status, code, message, { expose: true, ...options });
    this.title = title;
  }
}

const expiredFlow = () =>
  new UpstreamRefused(
    400,
    'UpstreamFlowInvalid',
    'This sign-in has expired or was already used',
    'Start again from the sign-in page.',
  );

export interface UpstreamProvider {
  id: string;
  name: string;
}

export interface LinkedIdentity {
  id: string;
  provider: string;
  /** The provider's display name, or its id if the operator removed it. */
  providerName: string;
  subject: string;
  email: string | null;
  linkedAt: Date;
  lastUsedAt: Date | null;
}

export interface UpstreamCaller {
  accountId: string;
  actor: string;
  requestId: string | null;
}

export interface UpstreamSignIn {
  readonly providers: readonly UpstreamProvider[];
  /** A sign-in for oidc-provider interaction `uid`: where to send the browser, and the state
   * to keep in its cookie. */
  startLogin(providerId: string, uid: string): Promise<{ url: string; state: string }>;
  /** A link for the caller's account: the address its browser opens (once, within ten
   * minutes) to sign in at the provider. */
  createLink(caller: UpstreamCaller, providerId: string): Promise<{ url: string; expiresAt: Date }>;
  /** The browser opens the link made by createLink: binds the flow to it. */
  startLink(state: string): Promise<{ url: string; state: string }>;
  /** What the callback's state names, without using it (null: nothing usable). */
  peek(state: string): Promise<Pick<UpstreamFlowRow, 'purpose' | 'interaction_uid'> | null>;
  /** The callback of a sign-in: the account to sign in (linked, joined or created). */
  completeLogin(input: CallbackInput & { uid: string }): Promise<Account>;
  /** The callback of a link: the identity is now the account's. */
  completeLink(input: CallbackInput): Promise<{ provider: UpstreamProvider; email: string | null }>;
  list(accountId: string): Promise<LinkedIdentity[]>;
  /** Refused when the account would be left with no way to sign in. */
  unlink(caller: UpstreamCaller, id: string): Promise<void>;
  /** Drops expired flows (the sweeper). */
  sweep(): Promise<number>;
}

interface CallbackInput {
  providerId: string;
  /** The callback URL as the browser requested it (code, state, iss…). */
  callbackUrl: URL;
  /** The state in the browser's cookie, or null. */
  cookieState: string | null;
}

export interface UpstreamDeps {
  db: Kysely<Database>;
  secrets: Secrets;
  log: Logger;
  clock: Clock;
  publicUrl: string;
  providers: readonly UpstreamProviderSetting[];
  signupPolicy: SignupPolicy;
  signupEmailDomains: readonly string[];
  onChanged?: (accountId: string) => Promise<void> | void;
}

interface Claims {
  sub: string;
  email: string | null;
  emailVerified: boolean;
  name: string | null;
}

export function createUpstreamSignIn(deps: UpstreamDeps): UpstreamSignIn {
  const { db, secrets, log, clock } = deps;
  const byId = new Map(deps.providers.map((p) => [p.id, p]));
  const discovered = new Map<string, { config: oidc.Configuration; until: number }>();
  const hashState = (state: string) => secrets.hmac(STATE_HASH_PURPOSE, state);

  function setting(providerId: string): UpstreamProviderSetting {
    const found = byId.get(providerId);
    if (found === undefined) throw new NotFound(`No sign-in provider ${providerId}`);
    return found;
  }

  const unreachable = (p: UpstreamProviderSetting, cause: unknown) =>
    new UpstreamRefused(
      502,
      'UpstreamUnavailable',
      `${p.name} could not be reached`,
      `Signing in with ${p.name} is not possible right now. Try again in a few minutes, or sign in another way.`,
      { cause },
    );

  async function configuration(p: UpstreamProviderSetting): Promise<oidc.Configuration> {
    const now = clock().getTime();
    const cached = discovered.get(p.id);
    if (cached !== undefined && cached.until > now) return cached.config;
    // http:// only because the operator wrote it so (a provider on a private network, tests).
    const insecure = new URL(p.issuer).protocol === 'http:';
    let config: oidc.Configuration;
    try {
      config = await oidc.discovery(
        new URL(p.issuer),
        p.client_id,
        undefined,
        oidc.ClientSecretBasic(p.client_secret),
        { execute: insecure ? [oidc.allowInsecureRequests] : [], timeout: HTTP_TIMEOUT_SECONDS },
      );
    } catch (error) {
      log.warn({ err: error, provider: p.id }, 'upstream discovery failed');
      throw unreachable(p, error);
    }
    // client_secret_basic is the default (RFC 8414 §2); a provider that lists only
    // client_secret_post gets that.
    const methods = config.serverMetadata().token_endpoint_auth_methods_supported;
    if (methods !== undefined && !methods.includes('client_secret_basic')) {
      config = new oidc.Configuration(
        config.serverMetadata(),
        p.client_id,
        undefined,
        oidc.ClientSecretPost(p.client_secret),
      );
      if (insecure) oidc.allowInsecureRequests(config);
    }
    config.timeout = HTTP_TIMEOUT_SECONDS;
    discovered.set(p.id, { config, until: now + DISCOVERY_TTL_MS });
    return config;
  }

  const callbackUrl = (p: UpstreamProviderSetting) =>
    `${deps.publicUrl}${UPSTREAM_CALLBACK_PATH(p.id)}`;

  async function authorizationUrl(p: UpstreamProviderSetting, flow: NewFlow) {
    const config = await configuration(p);
    return oidc.buildAuthorizationUrl(config, {
      redirect_uri: callbackUrl(p),
      scope: p.scopes ?? DEFAULT_SCOPES,
      code_challenge: await oidc.calculatePKCECodeChallenge(flow.code_verifier),
      code_challenge_method: 'S256',
      state: flow.state,
      nonce: flow.nonce,
    }).href;
  }

  type NewFlow = { state: string; code_verifier: string; nonce: string };
  function newFlow(): NewFlow {
    return {
      state: oidc.randomState(),
      code_verifier: oidc.randomPKCECodeVerifier(),
      nonce: oidc.randomNonce(),
    };
  }

  /** Uses the flow up and trades the code for the provider's claims. */
  async function exchange(input: CallbackInput, purpose: 'login' | 'link') {
    const p = setting(input.providerId);
    const state = input.callbackUrl.searchParams.get('state');
    // The state must come back to the browser that started the flow (login CSRF).
    if (state === null || input.cookieState === null || state !== input.cookieState) {
      throw new UpstreamRefused(
        400,
        'UpstreamFlowInvalid',
        'This sign-in was not started in this browser',
        'Start again from the sign-in page, in the browser you want to sign in with.',
      );
    }
    const flow = await consumeUpstreamFlow(db, hashState(state), clock());
    if (flow === undefined || flow.provider !== p.id || flow.purpose !== purpose) {
      throw expiredFlow();
    }
    const error = input.callbackUrl.searchParams.get('error');
    if (error !== null) {
      throw new UpstreamRefused(
        403,
        'UpstreamDenied',
        `${p.name} did not sign you in`,
        `${p.name} answered: ${error.slice(0, 100)}. Start again, or sign in another way.`,
      );
    }
    const config = await configuration(p);
    // The token request goes to the registered redirect URI whatever host the browser used.
    const current = new URL(callbackUrl(p));
    current.search = input.callbackUrl.search;
    let tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
    try {
      tokens = await oidc.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: flow.code_verifier,
        expectedState: state,
        expectedNonce: flow.nonce,
        idTokenExpected: true,
      });
    } catch (cause) {
      throw exchangeFailed(p, cause);
    }
    const idClaims = tokens.claims()!;
    let claims: Record<string, unknown> = { ...idClaims };
    // Many providers (oidc-provider among them) put e-mail claims in userinfo only.
    if (config.serverMetadata().userinfo_endpoint !== undefined) {
      try {
        const info = await oidc.fetchUserInfo(config, tokens.access_token, idClaims.sub);
        claims = { ...claims, ...info, sub: idClaims.sub };
      } catch (cause) {
        throw exchangeFailed(p, cause);
      }
    }
    return { provider: p, flow, claims: readClaims(claims) };
  }

  function exchangeFailed(p: UpstreamProviderSetting, cause: unknown) {
    // A network failure is the provider being down; anything else (a bad signature, a wrong
    // nonce, a used code) is refused as a failed sign-in without saying which check failed.
    const network =
      cause instanceof TypeError ||
      (cause instanceof Error && (cause.name === 'TimeoutError' || cause.name === 'AbortError'));
    log.warn({ err: cause, provider: p.id }, 'upstream code exchange failed');
    if (network) return unreachable(p, cause);
    return new UpstreamRefused(
      400,
      'UpstreamFlowInvalid',
      `The answer from ${p.name} could not be verified`,
      'Start again from the sign-in page.',
      { cause },
    );
  }

  function readClaims(raw: Record<string, unknown>): Claims {
    const email = typeof raw.email === 'string' && raw.email.length <= 320 ? raw.email : null;
    const name = typeof raw.name === 'string' ? raw.name.slice(0, 100) : null;
    return {
      sub: String(raw.sub),
      email,
      // Some providers (older Cognito, Azure AD B2C) send the string "true".
      emailVerified: raw.email_verified === true || raw.email_verified === 'true',
      name,
    };
  }

  function refuse(code: string, title: string, message: string) {
    return new UpstreamRefused(403, code, title, message);
  }

  function safeName(name: string | null): string | null {
    if (name === null) return null;
    try {
      return checkName(name);
    } catch {
      return null;
    }
  }

  async function notifyChanged(trx: Kysely<Database>, accountId: string) {
    await sql`select pg_notify(${ACCOUNTS_CHANNEL}, ${accountId})`.execute(trx);
  }

  /** The account a sign-in with these claims is for: linked, joined by address, or new. */
  async function resolveAccount(p: UpstreamProviderSetting, claims: Claims): Promise<Account> {
    const now = clock();
    const { account, created } = await db.transaction().execute(async (trx) => {
      const linked = await findIdentityBySubject(trx, p.id, claims.sub);
      if (linked !== undefined) {
        const row = await findAccountByIdForUpdate(trx, linked.account_id);
        if (row === undefined || row.status !== 'active') throw disabledAccount();
        await updateIdentitySeen(trx, linked.id, { email: claims.email, lastUsedAt: now });
        return { account: toAccount(row), created: false };
      }
      if (claims.email === null) {
        throw refuse(
          'UpstreamNoEmail',
          `${p.name} did not share your e-mail address`,
          `Allow ${p.name} to share your e-mail address with this service, or sign in another way.`,
        );
      }
      const existing = await findAccountByEmail(trx, claims.email);
      if (existing !== undefined) {
        if (!claims.emailVerified) {
          throw refuse(
            'UpstreamEmailNotVerified',
            `${p.name} has not verified this e-mail address`,
            `An account with ${claims.email} exists here, but ${p.name} does not say it verified that address, so it cannot sign in to that account. Verify the address at ${p.name}, or sign in with your password and link ${p.name} from your account page.`,
          );
        }
        if (existing.status !== 'active') throw disabledAccount();
        await insertIdentity(trx, identityRow(p, claims, existing.id, now));
        await recordAudit(trx, {
          actor: existing.id,
          action: 'account.identity_link',
          subject: existing.id,
          requestId: null,
          details: { provider: p.id, by: 'verified_email' },
        });
        return { account: toAccount(existing), created: false };
      }
      if (deps.signupPolicy !== 'open') {
        throw refuse(
          'SignUpClosed',
          'There is no account for this address',
          deps.signupPolicy === 'invite'
            ? `No account here uses ${claims.email}, and accounts are created by invitation only. Ask for an invitation, then link ${p.name} from your account page.`
            : `No account here uses ${claims.email}, and accounts are created by the operator. Ask the operator for one.`,
        );
      }
      const email = checkEmailOrRefuse(p, claims.email);
      const domain = email.slice(email.lastIndexOf('@') + 1).toLowerCase();
      if (deps.signupEmailDomains.length > 0 && !deps.signupEmailDomains.includes(domain)) {
        throw refuse(
          'EmailDomainNotAllowed',
          'This address cannot sign up here',
          `Sign-up is limited to addresses at ${deps.signupEmailDomains.join(', ')}.`,
        );
      }
      const row = await insertAccount(trx, {
        id: newId('acct'),
        email,
        name: safeName(claims.name),
        password_hash: null,
        // Unverified upstream: as a sign-up, no gateway or signer credentials until verified.
        email_verified: claims.emailVerified,
      });
      await insertIdentity(trx, identityRow(p, claims, row.id, now));
      await notifyChanged(trx, row.id);
      await recordAudit(trx, {
        actor: row.id,
        action: 'account.sign_up',
        subject: row.id,
        requestId: null,
        details: { provider: p.id },
      });
      return { account: toAccount(row), created: true };
    });
    if (created) await deps.onChanged?.(account.id);
    return account;
  }

  function checkEmailOrRefuse(p: UpstreamProviderSetting, email: string): string {
    try {
      return checkEmail(email);
    } catch {
      throw refuse(
        'UpstreamNoEmail',
        `${p.name} shared an address that cannot be used`,
        'Sign in another way.',
      );
    }
  }

  const disabledAccount = () =>
    refuse(
      'AccountDisabled',
      'This account cannot sign in',
      'The account is disabled or deleted. Ask the operator if you think this is a mistake.',
    );

  function identityRow(p: UpstreamProviderSetting, claims: Claims, accountId: string, now: Date) {
    return {
      id: newId('idn'),
      provider: p.id,
      subject: claims.sub,
      account_id: accountId,
      email: claims.email,
      linked_at: now,
      last_used_at: now,
    };
  }

  return {
    providers: deps.providers.map((p) => ({ id: p.id, name: p.name })),

    async startLogin(providerId, uid) {
      const p = setting(providerId);
      const flow = newFlow();
      // Discovery first: an unreachable provider leaves no row behind.
      const url = await authorizationUrl(p, flow);
      const now = clock();
      await insertUpstreamFlow(db, {
        state_hash: hashState(flow.state),
        provider: p.id,
        purpose: 'login',
        interaction_uid: uid,
        account_id: null,
        code_verifier: flow.code_verifier,
        nonce: flow.nonce,
        created_at: now,
        expires_at: new Date(now.getTime() + FLOW_TTL_MS),
        started_at: now,
      });
      return { url, state: flow.state };
    },

    async createLink(caller, providerId) {
      const p = setting(providerId);
      const flow = newFlow();
      await configuration(p);
      const now = clock();
      const expiresAt = new Date(now.getTime() + FLOW_TTL_MS);
      await insertUpstreamFlow(db, {
        state_hash: hashState(flow.state),
        provider: p.id,
        purpose: 'link',
        interaction_uid: null,
        account_id: caller.accountId,
        code_verifier: flow.code_verifier,
        nonce: flow.nonce,
        created_at: now,
        expires_at: expiresAt,
      });
      return {
        url: `${deps.publicUrl}${UPSTREAM_LINK_PATH}?state=${encodeURIComponent(flow.state)}`,
        expiresAt,
      };
    },

    async startLink(state) {
      const row = await startUpstreamFlow(db, hashState(state), clock());
      if (row === undefined || row.purpose !== 'link') throw expiredFlow();
      const p = setting(row.provider);
      const url = await authorizationUrl(p, {
        state,
        code_verifier: row.code_verifier,
        nonce: row.nonce,
      });
      return { url, state };
    },

    async peek(state) {
      const row = await findLiveUpstreamFlow(db, hashState(state), clock());
      return row === undefined
        ? null
        : { purpose: row.purpose, interaction_uid: row.interaction_uid };
    },

    async completeLogin(input) {
      const { provider, flow, claims } = await exchange(input, 'login');
      if (flow.interaction_uid !== input.uid) throw expiredFlow();
      return resolveAccount(provider, claims);
    },

    async completeLink(input) {
      const { provider: p, flow, claims } = await exchange(input, 'link');
      const accountId = flow.account_id;
      if (accountId === null) throw expiredFlow();
      const now = clock();
      try {
        await db.transaction().execute(async (trx) => {
          const account = await findAccountByIdForUpdate(trx, accountId);
          if (account === undefined || account.status !== 'active') throw disabledAccount();
          const linked = await findIdentityBySubject(trx, p.id, claims.sub);
          if (linked !== undefined) {
            if (linked.account_id === accountId) return;
            throw alreadyLinked(p);
          }
          await insertIdentity(trx, identityRow(p, claims, accountId, now));
          await recordAudit(trx, {
            actor: accountId,
            action: 'account.identity_link',
            subject: accountId,
            requestId: null,
            details: { provider: p.id, by: 'signed_in' },
          });
        });
      } catch (error) {
        // Linked to another account by a concurrent flow.
        if ((error as { code?: string }).code === UNIQUE_VIOLATION) throw alreadyLinked(p);
        throw error;
      }
      return { provider: { id: p.id, name: p.name }, email: claims.email };
    },

    async list(accountId) {
      const rows = await listIdentitiesByAccount(db, accountId);
      return rows.map((row) => ({
        id: row.id,
        provider: row.provider,
        providerName: byId.get(row.provider)?.name ?? row.provider,
        subject: row.subject,
        email: row.email,
        linkedAt: row.linked_at,
        lastUsedAt: row.last_used_at,
      }));
    },

    async unlink(caller, id) {
      await db.transaction().execute(async (trx) => {
        // The account row is locked so two unlinks cannot each leave the other as the last way.
        const account = await findAccountByIdForUpdate(trx, caller.accountId);
        if (account === undefined) throw new NotFound(`No linked identity ${id}`);
        const identities = await listIdentitiesByAccount(trx, caller.accountId);
        const target = identities.find((row) => row.id === id);
        if (target === undefined) throw new NotFound(`No linked identity ${id}`);
        // A provider the operator removed no longer signs anyone in.
        const others = identities.filter((row) => row.id !== id && byId.has(row.provider));
        if (account.password_hash === null && others.length === 0) {
          throw new Conflict(
            'This is the only way this account signs in: set a password or link another provider first',
          );
        }
        await deleteIdentityById(trx, id);
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'account.identity_unlink',
          subject: caller.accountId,
          requestId: caller.requestId,
          details: { provider: target.provider },
        });
      });
    },

    async sweep() {
      return deleteExpiredUpstreamFlows(db, clock());
    },
  };
}

function alreadyLinked(p: UpstreamProviderSetting) {
  return new UpstreamRefused(
    409,
    'UpstreamIdentityTaken',
    `This ${p.name} account is linked to another account`,
    `Sign in with ${p.name} to use that account, or unlink it there first.`,
  );
}
