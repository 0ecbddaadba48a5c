// Identity: accounts (people) and app users, OIDC apps (clients), signing keys and the OpenID
// provider with its pages. Other capabilities reach identity only through what is exported here.
import type Provider from 'oidc-provider';
import type { Config } from '../config.ts';
import type { Authenticator, CredentialVerifier } from '../platform/auth.ts';
import type { Capability } from '../platform/capability.ts';
import type { DatabaseHandle } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import type { Secrets } from '../platform/secrets.ts';
import { startSweeper } from './adapter.ts';
import { findAppByClientId, findAppOwner as findAppOwnerQuery } from './queries.ts';
import { createDisabledAccounts } from './disabled-accounts.ts';
import { createDisabledApps } from './disabled-apps.ts';
import type { FirstPartyClient } from './clients.ts';
import { interactionRoutes, oidcMiddleware } from './interactions.ts';
import { startLiveKeys } from './live-keys.ts';
import { TTL, createProvider } from './provider.ts';
import { createClientCredentials } from './client-credentials.ts';
import type { ClientCredentials } from './client-credentials.ts';
import { createRateLimiter } from './rate-limit.ts';
import { accountRoutes, appRoutes } from './routes.ts';
import {
  ACCOUNTS_CHANNEL,
  APPS_CHANNEL,
  createAccountsService,
  createAppsService,
} from './service.ts';
import type { AccountsService, AppsService } from './service.ts';
import { loadSigningKeys, rotateSigningKeys } from './signing-keys.ts';
import type { RotationResult } from './signing-keys.ts';
import { createAccessTokenVerifier } from './verifier.ts';
import { createOnboardingService } from './onboarding.ts';
import { createFirstRun } from './first-run.ts';
import type { FirstRun } from './first-run.ts';
import { firstRunRoutes } from './first-run-routes.ts';
import type { OnboardingService } from './onboarding.ts';
import {
  accountStatusRoutes,
  invitationRoutes,
  loginLinks,
  onboardingPageRoutes,
} from './onboarding-routes.ts';
import { createSelfService } from './self-service.ts';
import type { AccountKeys, SelfService } from './self-service.ts';
import { selfServiceRoutes } from './self-service-routes.ts';
import { createSecondFactors } from './second-factor.ts';
import type { SecondFactors } from './second-factor.ts';
import { createSignInFlow } from './second-factor-flow.ts';
import type { SignInFlow } from './second-factor-flow.ts';
import { secondFactorRoutes } from './second-factor-routes.ts';
import { disabledMailer } from '../platform/mail.ts';
import type { Mailer } from '../platform/mail.ts';
import type { Clock } from '../platform/clock.ts';
import { systemClock } from '../platform/clock.ts';
import { createUpstreamSignIn } from './upstream.ts';
import type { UpstreamSignIn } from './upstream.ts';
import { upstreamApiRoutes, upstreamButtons, upstreamPageRoutes } from './upstream-routes.ts';

export type {
  AccountsTable,
  AppUsersTable,
  AppsTable,
  OidcPayloadsTable,
  SigningKeysTable,
} from './table.ts';
export type { Account, App as OidcApp, AppKind } from './queries.ts';
export type { AccountPatch, AccountsService, AppCaller, AppsService } from './service.ts';
export { ACCOUNTS_CHANNEL, createAccountsService, createDirectory } from './service.ts';
export type { FirstPartyClient } from './clients.ts';
export { sweepExpiredPayloads } from './adapter.ts';
export { API_KEY_TOKEN_TYPE, APP_USER_TOKEN_TYPE } from './token-exchange.ts';
export { identityCommands } from './cli.ts';
export type { IdentityCliDeps } from './cli.ts';
export { hashPassword, verifyPassword } from './passwords.ts';
export { EmailNotVerified } from './errors.ts';
export type { FirstRun } from './first-run.ts';
export { SETUP_PATH, SETUP_TTL_MS } from './first-run.ts';
export type {
  Invitation,
  IssuedLink,
  OnboardingService,
  PendingInvitation,
  SignupPolicy,
} from './onboarding.ts';
export type { AccountKeys, AccountSession, SelfService } from './self-service.ts';
export type { LinkedIdentity, UpstreamProvider, UpstreamSignIn } from './upstream.ts';
export type { SecondFactors } from './second-factor.ts';
export type { SignInFlow } from './second-factor-flow.ts';
export { ACR_MFA, ACR_PASSWORD, claimsFor } from './second-factor.ts';

export type IdentityConfig = Config['identity'];

/** What identity needs of the API-key verifier (keys'), named here so identity imports no keys. */
export interface KeyCredentials {
  /** Told when an account changes (in this process or, by NOTIFY, another), or null when
   * changes may have been missed: drops that account's cached keys. */
  forgetAccount(accountId: string | null): void;
  /** Why a token made from API key `keyId` must be refused now, or null. */
  keyRefusal(keyId: string): Promise<string | null>;
}

export interface IdentityDeps {
  config: IdentityConfig;
  /** Queries, and LISTEN for account and app changes made by other replicas and the CLI. */
  database: DatabaseHandle;
  log: Logger;
  secrets: Secrets;
  /** The service's authenticator (token exchange turns API keys into access tokens with it). */
  authenticator: Authenticator;
  /** API keys: a disabled account's keys are refused at once, and a token made from a key dies
   * with the key. Absent in tests of identity alone. */
  keys?: KeyCredentials;
  /** Clients tollhouse runs itself (the console), registered as static OIDC clients. */
  firstPartyClients?: readonly FirstPartyClient[];
  clock?: Clock;
  /** Verification, reset and invitation e-mails (default: not configured). */
  mailer?: Mailer;
  /** Revokes a deleted account's API keys (keys' service, wired in app.ts). */
  accountKeys?: AccountKeys;
}

export interface Identity extends Capability {
  accounts: AccountsService;
  apps: AppsService;
  /** Sign-up, e-mail verification, password reset, invitations (issue #18). */
  onboarding: OnboardingService;
  /** The account holder's own password, address, sessions and deletion (issue #18 item 7). */
  selfService: SelfService;
  /** First run: the one-time setup link while no operator exists (issue #18 item 6). */
  firstRun: FirstRun;
  /** Sign in with an upstream OpenID provider, and linked identities (issue #18 item 3). */
  upstream: UpstreamSignIn;
  /** TOTP, recovery codes and passkeys (issue #18 item 4). */
  secondFactors: SecondFactors;
  /** The end of every sign-in: second factor, step-up, amr/acr (second-factor-flow.ts). */
  signIn: SignInFlow;
  /** The provider serving now (a new instance after every signing-key change). */
  readonly provider: Provider;
  /** Bearer JWT access tokens → principal (register in the authenticator's verifiers). */
  verifier: CredentialVerifier;
  /** Publishes a new next key and makes the previous next key sign, in every running replica
   * (NOTIFY), this one before it returns. */
  rotateKeys(): Promise<RotationResult>;
  close(): Promise<void>;
}

// Expired rows are harmless (every lookup filters on expiry), so sweeping once a minute only
// bounds table growth.
const SWEEP_INTERVAL_MS = 60_000;
// Account tokens are kept for days after use (support questions): hourly is plenty.
const TOKEN_SWEEP_INTERVAL_MS = 3_600_000;

export async function createIdentity(deps: IdentityDeps): Promise<Identity> {
  const { log, secrets, authenticator, config } = deps;
  const { db, listen } = deps.database;
  const keyBox = secrets.box('oidc-signing-keys');
  const cleanups: Array<() => Promise<void> | void> = [];
  const closeAll = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  };
  try {
    const apps = createAppsService({ db, secrets, clock: deps.clock ?? systemClock });
    // Tokens of a disabled app or app user are refused by the verifier (from memory).
    const disabledApps = createDisabledApps({ db, log });
    cleanups.push(() => disabledApps.close());
    // null: notifications may have been missed (reconnect), so forget every cached app.
    cleanups.push(
      await listen(APPS_CHANNEL, (clientId) => {
        apps.invalidate(clientId);
        void disabledApps.changed().catch(() => undefined);
      }),
    );
    await disabledApps.changed();

    // An account's status decides whether its apps get tokens, its API keys verify and its
    // access tokens are accepted: every replica forgets what it cached about it on a change.
    const disabled = createDisabledAccounts({ db, log });
    cleanups.push(() => disabled.close());
    const accountChanged = (accountId: string | null): Promise<void> => {
      if (accountId === null) apps.invalidate(null);
      else apps.invalidateOwner(accountId);
      deps.keys?.forgetAccount(accountId);
      // A failed read is logged and retried by `disabled` itself; a change that committed is not
      // reported to its caller as failed.
      return disabled.changed(accountId).catch(() => undefined);
    };
    // LISTEN before the first read, so a change committed in between is not missed.
    cleanups.push(
      await listen(ACCOUNTS_CHANNEL, (payload) => {
        void accountChanged(payload === '' ? null : payload);
      }),
    );
    await disabled.changed(null);
    const accounts = createAccountsService({ db, onChanged: accountChanged });
    // Issue #18: one hour windows; the per-minute login limits stay as they are.
    const onboardingConfig = config.onboarding;
    const onboarding = createOnboardingService({
      db,
      accounts,
      mailer: deps.mailer ?? disabledMailer,
      secrets,
      log,
      clock: deps.clock ?? systemClock,
      config: { publicUrl: config.publicUrl, ...onboardingConfig },
      onChanged: accountChanged,
    });
    cleanups.push(() => onboarding.close());
    const firstRun = createFirstRun({
      db,
      secrets,
      clock: deps.clock ?? systemClock,
      log,
      publicUrl: config.publicUrl,
      onChanged: accountChanged,
    });
    const upstream = createUpstreamSignIn({
      db,
      secrets,
      log,
      clock: deps.clock ?? systemClock,
      publicUrl: config.publicUrl,
      providers: config.upstreamProviders,
      signupPolicy: onboardingConfig.signupPolicy,
      signupEmailDomains: onboardingConfig.signupEmailDomains,
      onChanged: accountChanged,
    });
    const HOUR_MS = 3_600_000;
    const onboardingPerIp = createRateLimiter(onboardingConfig.signupAttemptsPerIpPerHour, HOUR_MS);
    const onboardingPerEmail = createRateLimiter(onboardingConfig.emailsPerAddressPerHour, HOUR_MS);

    const verifier = createAccessTokenVerifier({
      issuer: `${config.publicUrl}/oidc`,
      audience: config.publicUrl,
      publicJwks: [],
      isAccountDisabled: (accountId) => disabled.has(accountId),
      isAccountUnverified: (accountId) => disabled.unverified(accountId),
      // A credential dies with what it was made from: its app, its app user, its API key.
      parentRefusal(principal) {
        if (principal.appId !== null && disabledApps.appDisabled(principal.appId)) {
          return 'app disabled';
        }
        if (
          principal.appId !== null &&
          principal.endUserId !== null &&
          disabledApps.userDisabled(principal.appId, principal.endUserId)
        ) {
          return 'app user disabled';
        }
        if (principal.keyId !== null && deps.keys !== undefined) {
          return deps.keys.keyRefusal(principal.keyId);
        }
        return null;
      },
    });
    // Each provider's client_credentials fast path, built with it from the same keys.
    const clientCredentials = new WeakMap<Provider, ClientCredentials>();
    const live = await startLiveKeys({
      load: () => loadSigningKeys(db, keyBox),
      listen,
      log,
      build(keys) {
        const provider = createProvider({
          db,
          log,
          secrets,
          keys,
          apps,
          authenticator,
          firstPartyClients: deps.firstPartyClients ?? [],
          settings: {
            publicUrl: config.publicUrl,
            trustProxy: config.trustProxy,
            accessTokenTtlSeconds: config.accessTokenTtlSeconds,
            requireMfaForAdmins: config.requireMfaForAdmins,
          },
        });
        clientCredentials.set(
          provider,
          createClientCredentials({
            provider,
            keys,
            resource: config.publicUrl,
            accessTokenTtlSeconds: config.accessTokenTtlSeconds,
          }),
        );
        return provider;
      },
      onKeys: (keys) => verifier.setKeys(keys.publicJwks),
    });
    cleanups.push(() => live.close());
    const loginPerAccount = createRateLimiter(config.loginAttemptsPerMinute);
    const firstParty = deps.firstPartyClients ?? [];
    const selfService = createSelfService({
      db,
      accounts,
      apps,
      ...(deps.accountKeys === undefined ? {} : { keys: deps.accountKeys }),
      mailer: deps.mailer ?? disabledMailer,
      secrets,
      log,
      clock: deps.clock ?? systemClock,
      publicUrl: config.publicUrl,
      passwordAttempts: loginPerAccount,
      async clientName(clientId) {
        const fixed = firstParty.find((client) => client.clientId === clientId);
        if (fixed !== undefined) return fixed.name;
        return (await findAppByClientId(db, clientId))?.name ?? null;
      },
      onChanged: accountChanged,
    });
    cleanups.push(() => selfService.close());
    const loginPerIp = createRateLimiter(config.loginAttemptsPerIpPerMinute);
    const tokenPerIp = createRateLimiter(config.tokenRequestsPerIpPerMinute);
    const tokenPerClient = createRateLimiter(config.tokenRequestsPerClientPerMinute);
    // A 6-digit code has a million values: the per-account sign-in limit bounds guessing too.
    const secondFactors = createSecondFactors({
      db,
      secrets,
      clock: deps.clock ?? systemClock,
      publicUrl: config.publicUrl,
      attempts: createRateLimiter(config.loginAttemptsPerMinute),
    });
    const signIn = createSignInFlow({
      provider: live.current,
      factors: secondFactors,
      accounts,
      requireMfaForAdmins: config.requireMfaForAdmins,
      secureCookies: config.publicUrl.startsWith('https:'),
    });
    return {
      name: 'identity',
      accounts,
      apps,
      onboarding,
      selfService,
      firstRun,
      upstream,
      secondFactors,
      signIn,
      get provider() {
        return live.current();
      },
      verifier,
      // Before the router: runs oidc-provider under /oidc.
      middleware: [
        oidcMiddleware(live.current, { tokenPerIp, tokenPerClient }, (provider) => {
          const fast = clientCredentials.get(provider);
          if (fast === undefined) throw new Error('no client_credentials path for this provider');
          return fast;
        }),
      ],
      routes(router) {
        interactionRoutes(router, {
          provider: live.current,
          accounts,
          loginPerAccount,
          loginPerIp,
          secureCookies: config.publicUrl.startsWith('https:'),
          loginLinks: loginLinks(onboarding),
          upstreamButtons: upstreamButtons(upstream),
          // The console is the first-party client an operator signs in to.
          noOperatorNote: async (clientId) =>
            (deps.firstPartyClients ?? []).some((c) => c.clientId === clientId) &&
            !(await firstRun.operatorExists()),
          signIn,
        });
        signIn.routes(router);
        secondFactorRoutes(router, { factors: secondFactors, accounts });
        onboardingPageRoutes(router, {
          onboarding,
          secureCookies: config.publicUrl.startsWith('https:'),
          perIp: onboardingPerIp,
          perEmail: onboardingPerEmail,
          selfService,
        });
        invitationRoutes(router, { onboarding });
        accountStatusRoutes(router, { onboarding, accounts, perEmail: onboardingPerEmail });
        firstRunRoutes(router, {
          firstRun,
          secureCookies: config.publicUrl.startsWith('https:'),
          perIp: onboardingPerIp,
        });
        appRoutes(router, { apps, appOwner: (id) => findAppOwnerQuery(db, id) });
        accountRoutes(router, { accounts });
        selfServiceRoutes(router, { selfService });
        upstreamPageRoutes(router, {
          upstream,
          provider: live.current,
          secureCookies: config.publicUrl.startsWith('https:'),
          perIp: loginPerIp,
          signIn,
        });
        upstreamApiRoutes(router, { upstream });
      },
      async rotateKeys() {
        // A retired key stays published until every token it signed has expired.
        const longest = Math.max(config.accessTokenTtlSeconds, TTL.IdToken);
        const result = await rotateSigningKeys(db, keyBox, longest);
        await live.reload();
        return result;
      },
      async start() {
        // A serving process with no operator prints the one-time setup link (one-shot
        // commands do not start capabilities, so they mint nothing).
        await firstRun.mint();
        const sweeper = startSweeper(db, log, SWEEP_INTERVAL_MS);
        cleanups.push(() => sweeper.stop());
        // Every replica sweeps: the DELETE is idempotent, so two at once only repeat work.
        const tokenSweeper = setInterval(() => {
          onboarding
            .sweepTokens()
            .then((deleted) => {
              if (deleted > 0) log.info({ deleted }, 'swept used and expired account tokens');
            })
            .catch((err: unknown) => log.warn({ err }, 'account token sweep failed'));
        }, TOKEN_SWEEP_INTERVAL_MS);
        tokenSweeper.unref();
        cleanups.push(() => clearInterval(tokenSweeper));
        const flows = setInterval(() => {
          upstream
            .sweep()
            .catch((error: unknown) => log.warn({ err: error }, 'sweeping upstream flows failed'));
        }, SWEEP_INTERVAL_MS);
        flows.unref();
        cleanups.push(() => clearInterval(flows));
        const states = setInterval(() => {
          secondFactors.sweep().catch((error: unknown) => {
            log.warn({ err: error }, 'sweeping second-factor states failed');
          });
        }, SWEEP_INTERVAL_MS);
        states.unref();
        cleanups.push(() => clearInterval(states));
      },
      close: closeAll,
    };
  } catch (error) {
    await closeAll().catch(() => undefined);
    throw error;
  }
}
