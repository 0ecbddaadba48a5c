// Identity: accounts (people) and app users, OIDC apps (clients), signing keys and the OpenID
// provider with its pages. Other capabilities reach identity only through what is exported here.
import type { Kysely } from 'kysely';
import type { Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { Authenticator, CredentialVerifier } from '../platform/auth.ts';
import type { Database, DatabaseHandle } from '../platform/db.ts';
import type { Router } from '../platform/http.ts';
import type { Logger } from '../platform/log.ts';
import type { Secrets } from '../platform/secrets.ts';
import { startSweeper } from './adapter.ts';
import type { FirstPartyClient } from './clients.ts';
import { interactionRoutes, oidcMiddleware } from './interactions.ts';
import { TTL, createProvider } from './provider.ts';
import { createRateLimiter } from './rate-limit.ts';
import { appRoutes } from './routes.ts';
import { APPS_CHANNEL, createAccountsService, createAppsService } from './service.ts';
import type { AccountsService, AppsService } from './service.ts';
import { loadSigningKeys, rotateSigningKeys } from './signing-keys.ts';
import type { RotationResult } from './signing-keys.ts';
import { createAccessTokenVerifier } from './verifier.ts';

export type {
  AccountsTable,
  AppUsersTable,
  AppsTable,
  OidcPayloadsTable,
  SigningKeysTable,
} from './table.ts';
export type { Account, App as OidcApp, AppKind } from './queries.ts';
export { findAccountByEmail, findAccountById, insertAccount, toAccount } from './queries.ts';
export type { AccountsService, AppsService } from './service.ts';
export type { FirstPartyClient } from './clients.ts';
export { sweepExpiredPayloads } from './adapter.ts';
export { API_KEY_TOKEN_TYPE, APP_USER_TOKEN_TYPE } from './token-exchange.ts';

export interface IdentityConfig {
  publicUrl: string;
  trustProxy: boolean;
  accessTokenTtlSeconds: number;
  loginAttemptsPerMinute: number;
  loginAttemptsPerIpPerMinute: number;
  tokenRequestsPerIpPerMinute: number;
  tokenRequestsPerClientPerMinute: number;
}

export interface IdentityDeps {
  db: Kysely<Database>;
  /** LISTEN for app changes made by other replicas and the CLI. */
  listen: DatabaseHandle['listen'];
  log: Logger;
  secrets: Secrets;
  /** The service's authenticator (token exchange turns API keys into access tokens with it). */
  authenticator: Authenticator;
  config: IdentityConfig;
  /** Clients tollhouse runs itself (the console), registered as static OIDC clients. */
  firstPartyClients?: readonly FirstPartyClient[];
}

export interface Identity {
  accounts: AccountsService;
  apps: AppsService;
  provider: Provider;
  /** Bearer JWT access tokens → principal (register in the authenticator's verifiers). */
  verifier: CredentialVerifier;
  /** Mount before the router: runs oidc-provider under /oidc. */
  middleware: Middleware;
  routes(router: Router): void;
  /** Publishes a new next key and makes the previous next key sign (takes effect on restart). */
  rotateKeys(): Promise<RotationResult>;
  close(): Promise<void>;
}

// Expired rows are harmless (every lookup filters on expiry), so sweeping once a minute only
// bounds table growth.
const SWEEP_INTERVAL_MS = 60_000;

export async function createIdentity(deps: IdentityDeps): Promise<Identity> {
  const { db, listen, log, secrets, authenticator, config } = deps;
  const keyBox = secrets.box('oidc-signing-keys');
  const keys = await loadSigningKeys(db, keyBox);
  const accounts = createAccountsService({ db });
  const apps = createAppsService({ db, secrets });
  // null: notifications may have been missed (reconnect), so forget every cached app.
  const unlisten = await listen(APPS_CHANNEL, (clientId) => apps.invalidate(clientId));
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
    },
  });
  const verifier = createAccessTokenVerifier({
    issuer: `${config.publicUrl}/oidc`,
    audience: config.publicUrl,
    publicJwks: keys.publicJwks,
  });
  const sweeper = startSweeper(db, log, SWEEP_INTERVAL_MS);
  const loginPerAccount = createRateLimiter(config.loginAttemptsPerMinute);
  const loginPerIp = createRateLimiter(config.loginAttemptsPerIpPerMinute);
  const tokenPerIp = createRateLimiter(config.tokenRequestsPerIpPerMinute);
  const tokenPerClient = createRateLimiter(config.tokenRequestsPerClientPerMinute);
  return {
    accounts,
    apps,
    provider,
    verifier,
    middleware: oidcMiddleware(provider, { tokenPerIp, tokenPerClient }),
    routes(router) {
      interactionRoutes(router, {
        provider,
        accounts,
        loginPerAccount,
        loginPerIp,
        secureCookies: config.publicUrl.startsWith('https:'),
      });
      appRoutes(router, { apps, authenticator });
    },
    rotateKeys() {
      // A retired key stays published until every token it signed has expired.
      const longest = Math.max(config.accessTokenTtlSeconds, TTL.IdToken);
      return rotateSigningKeys(db, keyBox, longest);
    },
    async close() {
      sweeper.stop();
      await unlisten();
    },
  };
}
