// The console: web pages at /console for customers (keys, apps, usage, statements) and
// operators (accounts, plans, month close, signer, health). Server-rendered HTML, signed in
// through tollhouse's own OpenID provider, and every action is a call to the public /v1 API
// with the signed-in user's access token.
import type http from 'node:http';
import type { Config } from '../config.ts';
import type { FirstPartyClient } from '../identity/index.ts';
import type { Authenticator } from '../platform/auth.ts';
import type { Capability } from '../platform/capability.ts';
import type { DatabaseHandle } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import type { Secrets } from '../platform/secrets.ts';
import { createApiClient } from './api.ts';
import { createFramework } from './framework.ts';
import { accountPages } from './pages/accounts.ts';
import { balancePages, checkoutOrigins } from './pages/balance.ts';
import { appPages } from './pages/apps.ts';
import { keyPages } from './pages/keys.ts';
import { webhookPages } from './pages/webhooks.ts';
import { operatorPages } from './pages/operator.ts';
import { overviewPage } from './pages/overview.ts';
import { statementPages } from './pages/statements.ts';
import { usagePages } from './pages/usage.ts';
import { getStartedPages } from './pages/get-started.ts';
import type { GetStartedStore } from './pages/get-started.ts';
import { findGetStarted, markGetStarted } from './queries.ts';
import { yourAccountPages } from './pages/your-account.ts';
import { createSessionStore } from './session.ts';
import { CONSOLE_API_SCOPES, CONSOLE_CLIENT_ID, signInRoutes } from './signin.ts';
import { staticRoutes } from './static.ts';
import type { Clock } from '../platform/clock.ts';
import { systemClock } from '../platform/clock.ts';

export type { ConsoleGetStartedTable, ConsoleSessionsTable } from './table.ts';
export { CONSOLE_CLIENT_ID } from './signin.ts';
export { CONTENT_SECURITY_POLICY } from './framework.ts';
export { CONSOLE_LIST_CAP } from './framework.ts';
// Pure pieces, exported for their tests.
export { usd, eth } from './views.ts';
export { safeReturnTo } from './signin.ts';
export { dollarsToMicros } from './pages/accounts.ts';
export { checkoutOrigins } from './pages/balance.ts';
export { stackedBarChart } from './chart.ts';

export interface ConsoleDeps {
  config: Config['console'];
  database: DatabaseHandle;
  secrets: Secrets;
  log: Logger;
  authenticator: Authenticator;
  /** The app's request listener (the console calls /v1 through it on a loopback port). */
  handler: () => http.RequestListener;
  /** Where "Add credit" may send the browser (Stripe Checkout's origins; see pages/balance.ts). */
  checkoutOrigins?: readonly string[];
  clock?: Clock;
}

export interface Console extends Capability {
  close(): Promise<void>;
}

// Expired sessions are refused on read; sweeping only bounds the table.
const SWEEP_INTERVAL_MS = 3_600_000;

/** The console as identity's first-party client (static, no consent page). */
export function consoleClient(publicUrl: string): FirstPartyClient {
  return {
    clientId: CONSOLE_CLIENT_ID,
    name: 'tollhouse console',
    redirectUris: [`${publicUrl}/console/callback`],
    postLogoutRedirectUris: [`${publicUrl}/console/signed-out`],
    apiScopes: CONSOLE_API_SCOPES,
  };
}

export function createConsole(deps: ConsoleDeps): Console {
  const clock = deps.clock ?? systemClock;
  const { publicUrl } = deps.config;
  const secureCookies = publicUrl.startsWith('https:');
  // A console session lives as long as its OIDC access token, which oidc-provider stamps with
  // the wall clock (platform/clock.ts): the session store keeps the wall clock too.
  const sessions = createSessionStore({
    db: deps.database.db,
    secrets: deps.secrets,
    secureCookies,
  });
  const api = createApiClient(deps.handler);
  const db = deps.database.db;
  const getStarted: GetStartedStore = {
    async state(accountId) {
      const row = await findGetStarted(db, accountId);
      return { dismissed: row?.dismissed_at != null, completed: row?.completed_at != null };
    },
    dismiss: (accountId) => markGetStarted(db, accountId, 'dismissed_at', clock()),
    complete: (accountId) => markGetStarted(db, accountId, 'completed_at', clock()),
  };
  let sweeper: NodeJS.Timeout | null = null;
  return {
    name: 'console',
    start() {
      sweeper = setInterval(() => {
        sessions
          .sweep()
          .catch((err: unknown) => deps.log.warn({ err }, 'console session sweep failed'));
      }, SWEEP_INTERVAL_MS);
      sweeper.unref();
    },
    routes(router) {
      const framework = createFramework(router, {
        sessions,
        api,
        origin: new URL(publicUrl).origin,
        clock,
      });
      staticRoutes(router);
      signInRoutes(router, {
        publicUrl,
        secrets: deps.secrets,
        sessions,
        api,
        authenticator: deps.authenticator,
        secureCookies,
        framework,
        getStarted,
      });
      overviewPage(framework);
      getStartedPages(framework, {
        publicUrl,
        ownerInvitations: deps.config.ownerInvitations,
        store: getStarted,
      });
      keyPages(framework);
      balancePages(framework, {
        checkoutOrigins: deps.checkoutOrigins ?? checkoutOrigins(null),
      });
      webhookPages(framework);
      appPages(framework);
      usagePages(framework);
      statementPages(framework, api);
      accountPages(framework);
      yourAccountPages(framework);
      operatorPages(framework, api);
    },
    async close() {
      if (sweeper !== null) clearInterval(sweeper);
      await api.close();
    },
  };
}
