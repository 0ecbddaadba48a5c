// The composition root: builds the service from config — database → capabilities → routes.
// Called by src/main.ts (serve, migrate, CLI commands) and by tests; nothing else creates
// services, and nothing is global.
import { billingCommands, createBilling } from './billing/index.ts';
import type { Billing, BillingCliDeps } from './billing/index.ts';
import { checkoutOrigins, consoleClient, createConsole } from './console/index.ts';
import type { Console } from './console/index.ts';
import type { Config } from './config.ts';
import { createDatabase } from './database.ts';
import type { DatabaseHandle } from './database.ts';
import { createGateway } from './gateway/index.ts';
import type { Gateway } from './gateway/index.ts';
import { createDirectory, createIdentity, identityCommands } from './identity/index.ts';
import type { Identity, IdentityCliDeps } from './identity/index.ts';
import { CLI_CALLER, createKeys, keysCommands } from './keys/index.ts';
import type { Keys, KeysCliDeps } from './keys/index.ts';
import { createNotifications } from './notifications/index.ts';
import type { Notifications } from './notifications/index.ts';
import { createMetering, meteringCommands } from './metering/index.ts';
import type { Metering, MeteringCliDeps } from './metering/index.ts';
import { createAuthenticator } from './platform/auth.ts';
import type { Authenticator, CredentialVerifier } from './platform/auth.ts';
import { guardRouter } from './platform/authz.ts';
import type { Capability } from './platform/capability.ts';
import type { CliCommand } from './platform/cli.ts';
import { systemClock } from './platform/clock.ts';
import type { Clock } from './platform/clock.ts';
import { LIVENESS, healthRoutes } from './platform/health.ts';
import { Router, allowedMethods, anyOf, createHttp } from './platform/http.ts';
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
import type { SpendGate } from './platform/spend.ts';
import { createSigner, isSignerPath, signerCommands, signerNotFound } from './signer/index.ts';
import type { Signer, SignerCliDeps } from './signer/index.ts';
import type Koa from 'koa';

export interface AppOptions {
  config: Config;
  log: Logger;
  /** An already open database (tests); otherwise one is opened from `config.database`. */
  database?: DatabaseHandle;
  /** Apply pending migrations before serving (default true). */
  migrate?: boolean;
  /**
   * Start the capabilities' background work: timers, LISTEN, chain polls, scheduled jobs
   * (default true). One-shot commands pass false: they use the services and exit.
   */
  start?: boolean;
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
  metering: Metering;
  /** Plans, balances, spend gate (`billing.spendGate`), statements, Stripe. */
  billing: Billing;
  gateway: Gateway;
  /** The payment signer (keystore, chain view, funding, the go-livepeer protocol); disabled
   * without a chain and a keystore. */
  signer: Signer;
  console: Console;
  /** Outbound events (the EventSink), webhook endpoints and their deliveries, alert e-mails. */
  notifications: Notifications;
  /** Every capability, in the order they were built (and are started; closed in reverse). */
  capabilities: readonly Capability[];
  lifecycle: Lifecycle;
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

/**
 * Every command group of the command line, by name (main.ts's table): each capability's
 * commands, given what they use of the app. Static, so `tollhouse help` builds nothing, and a
 * command checks its arguments before it opens the app.
 */
export const COMMANDS: Readonly<Record<string, CliCommand<App>>> = {
  ...forApp(meteringCommands, (app): MeteringCliDeps => ({
    service: app.metering.service,
    clock: app.clock,
  })),
  ...forApp(keysCommands, (app): KeysCliDeps => ({
    keyService: app.keys.service,
    accounts: app.identity.accounts,
  })),
  ...forApp(identityCommands, (app): IdentityCliDeps => app.identity),
  ...forApp(signerCommands, (app): SignerCliDeps => app.signer),
  ...forApp(billingCommands, (app): BillingCliDeps => ({
    service: app.billing.service,
    stripe: app.billing.stripe,
    db: app.database.db,
    usage: app.metering.reads,
    prepaid: app.billing.prepaid,
  })),
};

function forApp<Deps>(
  commands: Readonly<Record<string, CliCommand<Deps>>>,
  pick: (app: App) => Deps,
): Record<string, CliCommand<App>> {
  return Object.fromEntries(
    Object.entries(commands).map(([name, command]) => [
      name,
      {
        summary: command.summary,
        usage: command.usage,
        run: (args, context) =>
          command.run(args, { io: context.io, open: async () => pick(await context.open()) }),
      } satisfies CliCommand<App>,
    ]),
  );
}

export async function createApp(options: AppOptions): Promise<App> {
  const { config, log } = options;
  const clock = options.clock ?? systemClock;
  const database = options.database ?? (await createDatabase({ config: config.database, log }));
  const capabilities: Capability[] = [];
  const closeTasks: Array<() => Promise<void> | void> = [];
  let closed: Promise<void> | null = null;
  const lifecycle: Lifecycle = { shuttingDown: false };
  const close = () => {
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
  };
  /** Built capabilities close in reverse, even when a later one fails to build. */
  const add = <C extends Capability>(capability: C): C => {
    capabilities.push(capability);
    closeTasks.push(() => capability.close());
    return capability;
  };
  try {
    if (options.migrate !== false) {
      const applied = await migrateToLatest(database.db);
      if (applied.length > 0) log.info({ applied }, 'database migrated');
    }
    const metrics = createMetrics();
    const secrets = createSecrets(config.secret);
    const httpOptions = {
      log,
      metrics,
      lifecycle,
      trustProxy: config.http.trustProxy,
      bodyLimitBytes: config.http.bodyLimitBytes,
      ownErrorShape: isSignerPath,
    };
    const http = createHttp(httpOptions);
    const router = new Router();
    // Each capability that issues credentials adds its verifier here; API keys first, as their
    // verifier answers null for anything not starting with `th_`.
    const verifiers: CredentialVerifier[] = [];
    const authenticator = createAuthenticator(verifiers);
    // Every route registered below declares who may call it; the router enforces it.
    guardRouter(router, authenticator);

    // The capabilities, in dependency order: each gets its config section, what every one
    // gets (database, log, clock, metrics, secrets, the authenticator) and the ports of the
    // ones before it. Who owns which account and app is identity's knowledge; the others ask
    // through the Directory port, built first because keys (made before identity) need it.
    const directory = createDirectory(database.db);
    // Outgoing e-mail for sign-up, password reset, invitations and alerts (SMTP_URL, MAIL_FROM).
    const mailer =
      config.mail.smtpUrl === null || config.mail.from === null
        ? disabledMailer
        : createSmtpMailer({ url: config.mail.smtpUrl, from: config.mail.from, log });
    closeTasks.push(() => mailer.close());
    // First, so every capability can publish outbound events (its EventSink) and so it closes
    // last: events published while the others shut down still get sent by the next start.
    const notifications = add(
      createNotifications({
        config: config.notifications,
        database,
        secrets,
        log,
        metrics,
        clock,
        mailer,
        directory,
      }),
    );
    const keys = add(
      createKeys({
        config: config.keys,
        database,
        secrets,
        log,
        metrics,
        clock,
        authenticator,
        directory,
        events: notifications.events,
      }),
    );
    verifiers.push(keys.verifier);
    const identity = add(
      await createIdentity({
        config: config.identity,
        database,
        log,
        secrets,
        clock,
        authenticator,
        // A disabled account's keys are refused at once; a token made from a key dies with it.
        keys: keys.verifier,
        // An account its holder deletes loses its keys through keys' own service (audited
        // there, cache and NOTIFY as for any revocation), acting as the holder.
        accountKeys: {
          async revokeAll(accountId, requestId) {
            const caller = { ...CLI_CALLER, actor: accountId, requestId };
            const active: string[] = [];
            for (let cursor: string | undefined; ;) {
              const page = await keys.service.list(caller, { accountId, limit: 100, cursor });
              active.push(...page.items.filter((k) => k.status === 'active').map((k) => k.id));
              if (page.nextCursor === null) break;
              cursor = page.nextCursor;
            }
            for (const id of active) await keys.service.revoke(caller, id);
            return active.length;
          },
        },
        // The console signs in through identity as a first-party client.
        firstPartyClients: [consoleClient(config.console.publicUrl)],
        mailer,
      }),
    );
    verifiers.push(identity.verifier);
    const metering = add(
      createMetering({
        database,
        log,
        clock,
        metrics,
        authenticator,
        appOwner: directory.appOwner,
      }),
    );
    const billing = add(
      createBilling({
        config: config.billing,
        database,
        usage: metering.reads,
        directory,
        log,
        clock,
        metrics,
        authenticator,
        events: notifications.events,
      }),
    );
    // Billing's gate: balances and spend caps, checked before the front door forwards a
    // request and before the signer signs a payment.
    const spend = options.spend ?? billing.spendGate;
    const gateway = add(
      createGateway({
        config: config.gateway,
        database,
        clock,
        secrets,
        authenticator,
        recorder: metering.recorder,
        spend,
        // Limits come from the account's plan (billing's view, kept current by NOTIFY) and
        // may be overridden per key (keys' verifier, read with the principal).
        limits: {
          planLimits: billing.spendGate.planLimits,
          keyOverride: keys.verifier.keyOverride,
        },
        keyLimits: {
          owner: (id) => keys.service.owner(id),
          find: (id) => keys.service.limits(id),
        },
        log,
      }),
    );
    const signer = add(
      await createSigner({
        config: config.signer,
        database,
        log,
        metrics,
        clock,
        secrets,
        authenticator,
        recorder: metering.recorder,
        spend,
        // A shared gateway credential's payments belong to the owner of the stream the front
        // door issued (its streams are the signer's directory).
        streams: gateway.streams,
        events: notifications.events,
      }),
    );
    // The console calls /v1 through this app's own handler (defined below).
    const consolePages = add(
      createConsole({
        config: config.console,
        database,
        secrets,
        log,
        clock,
        authenticator,
        handler: () => handler,
        checkoutOrigins: checkoutOrigins(config.billing.stripe.apiBase),
      }),
    );

    // Before the router: pages that need https first (they set Secure cookies when
    // PUBLIC_URL is https), then each capability's middleware (CORS for browser keys, the
    // OIDC mount).
    http.koa.use(httpsPages(config.http.publicUrl));
    for (const capability of capabilities) {
      for (const middleware of capability.middleware ?? []) http.koa.use(middleware);
    }
    const health = {
      db: database.db,
      metrics,
      lifecycle,
      shippedMigrations: await shippedMigrations(),
      metricsToken: config.metrics.token,
    };
    healthRoutes(router, health);
    openapiRoutes(router, { document: await loadOpenApi() });
    for (const capability of capabilities) capability.routes?.(router);
    http.koa.use(router.routes());
    http.koa.use(allowedMethods(router));
    // The front door's paths skip Koa's dispatch (the hot path, issue #6). CORS for browser
    // keys still runs first, as when the front door was a middleware after it (the OIDC mount
    // in between never matched its paths). Liveness is answered before both (issue #21).
    // So do the signer's payments (the same middlewares as in the router, without its
    // dispatch: signer/remote/routes.ts).
    const handler = http.listener(
      { ...anyOf([gateway.frontDoor, signer.paymentRoute(router)]), before: [keys.cors] },
      [LIVENESS],
    );

    // The signer-only listener: its own Koa app (request ids, logs, metrics, error rendering
    // as on the main one) with only health and the remote-signer routes.
    const signerHttp = createHttp(httpOptions);
    const signerRouter = new Router();
    healthRoutes(signerRouter, health);
    guardRouter(signerRouter, authenticator);
    signer.remoteRoutes(signerRouter);
    signerHttp.koa.use(signerNotFound());
    signerHttp.koa.use(signerRouter.routes());
    const signerHandler = signerHttp.listener(
      { ...anyOf([signer.paymentRoute(signerRouter)]), before: [] },
      [LIVENESS],
    );

    if (options.start !== false) {
      for (const capability of capabilities) await capability.start?.();
    }
    return {
      config,
      log,
      clock,
      database,
      koa: http.koa,
      router,
      metrics,
      secrets,
      authenticator,
      keys,
      identity,
      metering,
      billing,
      gateway,
      signer,
      console: consolePages,
      notifications,
      capabilities,
      lifecycle,
      handler,
      signerHandler,
      onClose(task) {
        closeTasks.push(task);
      },
      close,
    };
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
}
