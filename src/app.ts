// The composition root: builds the service from config — database → capabilities → routes.
// Called by src/main.ts (serve, migrate, CLI commands) and by tests; nothing else creates
// services, and nothing is global.
import { createBilling } from './billing/index.ts';
import { consoleClient, createConsole } from './console/index.ts';
import type { Billing } from './billing/index.ts';
import type { Config } from './config.ts';
import { createGateway } from './gateway/index.ts';
import { createMetering } from './metering/index.ts';
import type { Metering } from './metering/index.ts';
import { createIdentity, findAppOwner } from './identity/index.ts';
import type { Identity } from './identity/index.ts';
import { createAuthenticator } from './platform/auth.ts';
import { guardRouter } from './platform/authz.ts';
import type { Authenticator, CredentialVerifier } from './platform/auth.ts';
import { createKeys } from './keys/index.ts';
import type { Keys } from './keys/index.ts';
import { createDatabase } from './database.ts';
import type { DatabaseHandle } from './database.ts';
import { healthRoutes } from './platform/health.ts';
import { Router, allowedMethods, createHttp } from './platform/http.ts';
import type { Lifecycle, RequestListener } from './platform/http.ts';
import { httpsPages } from './platform/https-pages.ts';
import type { Logger } from './platform/log.ts';
import { createMetrics } from './platform/metrics.ts';
import type { Metrics } from './platform/metrics.ts';
import { migrateToLatest, shippedMigrations } from './platform/migrations.ts';
import { loadOpenApi, openapiRoutes } from './platform/openapi.ts';
import { createSecrets } from './platform/secrets.ts';
import { createSmtpMailer, disabledMailer } from './platform/mail.ts';
import type { Secrets } from './platform/secrets.ts';
import {
  createRemoteSigner,
  isSignerPath,
  createSigner,
  signerNotFound,
  signerRoutes,
} from './signer/index.ts';
import type { SpendGate } from './platform/spend.ts';
import type { Signer } from './signer/index.ts';
import type Koa from 'koa';
import type { Clock } from './platform/clock.ts';
import { systemClock } from './platform/clock.ts';

export interface AppOptions {
  config: Config;
  log: Logger;
  /** An already open database (tests); otherwise one is opened from `config.database`. */
  database?: DatabaseHandle;
  /** Apply pending migrations before serving (default true). */
  migrate?: boolean;
  /** "May this principal spend?" — replaces billing's gate (tests of the front door and signer). */
  spend?: SpendGate;
  /** The time every capability reads (default: the wall clock; tests set the date). */
  clock?: Clock;
}

export interface App {
  config: Config;
  log: Logger;
  clock: Clock;
  database: DatabaseHandle;
  koa: Koa;
  router: Router;
  metrics: Metrics;
  secrets: Secrets;
  /** Turns a bearer credential into a principal (API keys, then OIDC access tokens). */
  authenticator: Authenticator;
  keys: Keys;
  identity: Identity;
  /** The payment signer (keystore, chain view, funding); disabled without a chain/keystore. */
  signer: Signer;
  lifecycle: Lifecycle;
  metering: Metering;
  /** Plans, balances, spend gate (`billing.spendGate`), statements, Stripe. */
  billing: Billing;
  /** Node request listener for http.createServer. */
  handler: RequestListener;
  /**
   * The signer-only listener (SIGNER_PORT): the go-livepeer remote-signer routes and health,
   * nothing else, so the signer can sit on a private network while the API is public.
   */
  signerHandler: RequestListener;
  /** Registers work to run on close (flush buffers, stop timers), in reverse order. */
  onClose(task: () => Promise<void> | void): void;
  /** Runs the close tasks, then closes the database (unless it was passed in). */
  close(): Promise<void>;
}

export async function createApp(options: AppOptions): Promise<App> {
  const { config, log } = options;
  const clock = options.clock ?? systemClock;
  const database = options.database ?? (await createDatabase({ config: config.database, log }));
  const closeTasks: Array<() => Promise<void> | void> = [];
  try {
    if (options.migrate !== false) {
      const applied = await migrateToLatest(database.db);
      if (applied.length > 0) log.info({ applied }, 'database migrated');
    }
    const metrics = createMetrics();
    const lifecycle: Lifecycle = { shuttingDown: false };
    const secrets = createSecrets(config.secret);
    const http = createHttp({
      log,
      metrics,
      lifecycle,
      trustProxy: config.http.trustProxy,
      bodyLimitBytes: config.http.bodyLimitBytes,
      ownErrorShape: isSignerPath,
    });
    const koa = http.koa;
    const router = new Router();
    // Each capability that issues credentials adds its verifier here.
    const verifiers: CredentialVerifier[] = [];
    const authenticator = createAuthenticator(verifiers);
    // Every route registered below declares who may call it; the router enforces it.
    guardRouter(router, authenticator);
    // API keys first: their verifier answers null for anything not starting with `th_`.
    const keys = await createKeys({ database, secrets, log, metrics, clock, config: config.keys });
    closeTasks.push(() => keys.close());
    verifiers.push(keys.verifier);
    koa.use(keys.cors);
    keys.routes(router, authenticator);
    // The console signs in through identity as a first-party client, so identity learns of it
    // first; its pages are registered with the other routes below.
    const consoleOidcClient = consoleClient(config.http.publicUrl);
    // issue 18: e-mail for sign-up, password reset and invitations (SMTP_URL, MAIL_FROM).
    const { smtpUrl, mailFrom, ...onboarding } = config.onboarding;
    const mailer =
      smtpUrl === null || mailFrom === null
        ? disabledMailer
        : createSmtpMailer({ url: smtpUrl, from: mailFrom, log });
    closeTasks.push(() => mailer.close());
    const identity = await createIdentity({
      db: database.db,
      listen: (channel, handler) => database.listen(channel, handler),
      log,
      secrets,
      authenticator,
      firstPartyClients: [consoleOidcClient],
      clock,
      config: {
        publicUrl: config.http.publicUrl,
        trustProxy: config.http.trustProxy,
        ...config.identity,
        onboarding,
      },
      mailer,
      // A disabled account's API keys are refused at once, not when the cache entry ages out.
      onAccountChanged: (accountId) => keys.verifier.forgetAccount(accountId),
      // A token made from a key is refused once the key is (revoked, past its grace).
      keyRefusal: (keyId) => keys.verifier.keyRefusal(keyId),
    });
    closeTasks.push(() => identity.close());
    verifiers.push(identity.verifier);
    // Before the OIDC mount: its pages set Secure cookies when PUBLIC_URL is https.
    koa.use(httpsPages(config.http.publicUrl));
    koa.use(identity.middleware);

    const health = {
      db: database.db,
      metrics,
      lifecycle,
      shippedMigrations: await shippedMigrations(),
      metricsToken: config.metrics.token,
    };
    healthRoutes(router, health);
    // The signer-only listener: its own Koa app (request ids, logs, metrics, error rendering
    // as on the main one) with only health and the remote-signer routes.
    const signerHttp = createHttp({
      log,
      metrics,
      lifecycle,
      trustProxy: config.http.trustProxy,
      bodyLimitBytes: config.http.bodyLimitBytes,
      ownErrorShape: isSignerPath,
    });
    const signerRouter = new Router();
    healthRoutes(signerRouter, health);
    guardRouter(signerRouter, authenticator);
    openapiRoutes(router, { document: await loadOpenApi() });
    identity.routes(router);

    const metering = createMetering({
      database,
      log,
      authenticator,
      router,
      clock,
      appOwner: (appId) => findAppOwner(database.db, appId),
    });
    await metering.start();
    closeTasks.push(() => metering.close());
    const billing = createBilling({
      database,
      log,
      clock,
      authenticator,
      router,
      config: {
        rates: {
          fixed: config.billing.ethUsdRate,
          feedAddress: config.billing.ethUsdFeed,
          rpcUrl: config.billing.ethRpcUrl,
          maxAgeSeconds: config.billing.rateMaxAgeSeconds,
        },
        stripe: config.billing.stripe,
        spendRefreshMs: config.billing.spendRefreshMs,
        // Re-read the whole month's rollups every 10 minutes (late events for older hours).
        spendFullReloadMs: 600_000,
        closeAfterMs: config.billing.closeAfterMs,
        // Scheduled close and Stripe sync look for work every 5 minutes.
        jobIntervalMs: 300_000,
      },
    });
    await billing.start();
    closeTasks.push(() => billing.close());

    // Billing's gate: balances and spend caps, checked before the front door forwards a
    // request and before the signer signs a payment.
    const spend = options.spend ?? billing.spendGate;

    const signer = await createSigner({ config: config.signer, db: database.db, log, metrics });
    signerRoutes(router, { signer, authenticator });
    signer.start();
    closeTasks.push(() => signer.stop());

    const gateway = createGateway({
      database,
      clock,
      secrets,
      router,
      config: config.gateway,
      trustProxy: config.http.trustProxy,
      authenticator,
      recorder: metering.recorder,
      spend,
      signerMaxPrice:
        config.signer.remote.maxPricePerUnitWei > 0n
          ? {
              pricePerUnitWei: config.signer.remote.maxPricePerUnitWei,
              pixelsPerUnit: config.signer.remote.maxPricePixelsPerUnit,
            }
          : null,
    });
    closeTasks.push(() => gateway.close());

    // After the gateway: a shared gateway credential's payments belong to the owner of the
    // stream the front door issued (its streams are the signer's directory).
    createRemoteSigner({
      db: database.db,
      clock,
      log,
      secrets,
      config: config.signer.remote,
      signer,
      recorder: metering.recorder,
      authenticator,
      spend,
      routers: [router, signerRouter],
      streams: gateway.streams,
    });
    signerHttp.koa.use(signerNotFound());
    signerHttp.koa.use(signerRouter.routes());
    const signerHandler = signerHttp.listener({
      claims: () => false,
      before: [],
      answer: () => undefined,
    });

    // The console calls /v1 through this app's own handler (defined just below).
    const consolePages = createConsole({
      db: database.db,
      secrets,
      log,
      authenticator,
      publicUrl: config.http.publicUrl,
      clock,
      handler: () => handler,
    });
    consolePages.routes(router);
    closeTasks.push(() => consolePages.close());

    koa.use(router.routes());
    koa.use(allowedMethods(router));
    // The front door's paths skip Koa's dispatch (the hot path, issue #6). CORS for browser
    // keys still runs first, as when the front door was a middleware after it (the OIDC mount
    // in between never matched its paths).
    const handler = http.listener({ ...gateway.frontDoor, before: [keys.cors] });

    let closed: Promise<void> | null = null;
    return {
      config,
      log,
      clock,
      database,
      koa,
      router,
      metrics,
      secrets,
      authenticator,
      keys,
      identity,
      signer,
      lifecycle,
      metering,
      billing,
      handler,
      signerHandler,
      onClose(task) {
        closeTasks.push(task);
      },
      close() {
        closed ??= (async () => {
          lifecycle.shuttingDown = true;
          for (const task of closeTasks.reverse()) {
            try {
              await task();
            } catch (error) {
              log.error({ err: error }, 'close task failed');
            }
          }
          if (options.database === undefined) await database.close();
        })();
        return closed;
      },
    };
  } catch (error) {
    if (options.database === undefined) await database.close().catch(() => undefined);
    throw error;
  }
}
