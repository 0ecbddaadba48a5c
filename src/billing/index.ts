// Billing: plans and prices, balances and spend caps, month close into immutable statements,
// exports, and Stripe. Other capabilities reach billing only through what is exported here;
// the front door and the signer take `spendGate` (platform SpendGate).
import type { Directory } from '../platform/directory.ts';
import type { Authenticator } from '../platform/auth.ts';
import type { Capability } from '../platform/capability.ts';
import type { DatabaseHandle } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import type { UsageReads } from '../metering/index.ts';
import { addMonths, monthOfDate, monthStart } from './pricing.ts';
import { createRateSource } from './rates.ts';
import type { RateConfig, RateSource } from './rates.ts';
import { billingRoutes } from './routes.ts';
import { createBillingService } from './service.ts';
import type { BillingService } from './service.ts';
import { DEFAULT_PREPAID_CONFIG, createPrepaid, createPrepaidWebhooks } from './prepaid.ts';
import type { Prepaid, PrepaidConfig } from './prepaid.ts';
import { createSpendView } from './spend.ts';
import type { SpendView } from './spend.ts';
import type { EventSink } from '../platform/events.ts';
import { createStripeClient, createStripeSync } from './stripe.ts';
import type { StripeConfig, StripeSync } from './stripe.ts';
import type { Clock } from '../platform/clock.ts';
import { systemClock } from '../platform/clock.ts';
import { NotFound } from '../platform/errors.ts';
import type { Metrics } from '../platform/metrics.ts';
import { Gauge } from 'prom-client';
import { countFailingSyncs } from './queries.ts';

export type {
  BillingService,
  Prepaid,
  PrepaidConfig,
  RateConfig,
  RateSource,
  SpendView,
  StripeConfig,
  StripeSync,
};
export type { EthUsdRate, Price } from './pricing.ts';
export type { Plan, SpendCap, Statement, StatementLine } from './queries.ts';
export { createRateSource } from './rates.ts';
export { createSpendView } from './spend.ts';
export { DEFAULT_PREPAID_CONFIG } from './prepaid.ts';
export { RateUnavailable, MonthNotClosable } from './errors.ts';
export { STATEMENT_COLUMNS, exportMonth, exportUsage, exportStatement } from './export.ts';
export { billingCommands } from './cli.ts';
export type { BillingCliDeps } from './cli.ts';
export { chargeLine, weiToUsdMicros, parseUsd, formatUsd } from './pricing.ts';
// Month-close steps that decide amounts, for their own tests.
export { priceStatements, usageByAccount } from './close.ts';
export type { CloseResult, Plans } from './close.ts';
export { parseDecimalRate, statementTotals } from './pricing.ts';
// The prepaid pass's set-based queries, for bench/prepaid-gate.ts (before/after the N+1 fix).
export { latestCreditIds, openRecharges, rechargedThisMonth } from './prepaid-queries.ts';

export interface BillingConfig {
  rates: RateConfig;
  stripe: StripeConfig;
  spendRefreshMs: number;
  spendFullReloadMs: number;
  /**
   * Prepaid accounts are refused once their spendable balance is at or below this (micro-
   * dollars): headroom for work admitted before the gate sees it (docs: the in-flight bound).
   */
  prepaidReserveUsdMicros?: bigint;
  /** How often prepaid balances are looked at (alerts, auto-recharge); null: only runJobs. */
  prepaidIntervalMs?: number | null;
  /** Defaults: DEFAULT_PREPAID_CONFIG. */
  prepaid?: PrepaidConfig;
  /** Close a month this long after it ends; null: only `tollhouse billing close`. */
  closeAfterMs: number | null;
  /** How often the scheduled jobs (close, Stripe sync) look for work. */
  jobIntervalMs: number;
}

export interface BillingDeps {
  database: DatabaseHandle;
  log: Logger;
  authenticator: Authenticator;
  config: BillingConfig;
  /** Metering's usage: spend for the gate, what a close bills, raw events for exports. */
  usage: UsageReads;
  /** Whether an account exists (identity's accounts, through the platform port). */
  directory: Pick<Directory, 'account'>;
  /** Where balance, spend-cap and statement events are published (notifications' outbox). */
  events: EventSink;
  clock?: Clock;
  metrics?: Metrics;
}

export interface Billing extends Capability {
  service: BillingService;
  /** The gate the front door and the signer ask before spending. */
  spendGate: SpendView;
  stripe: StripeSync;
  rates: RateSource;
  /** Prepaid credit: Checkout top-ups, auto-recharge, balance alerts. */
  prepaid: Prepaid;
  /** One pass of the scheduled jobs (close the last month when due, sync Stripe). */
  runJobs(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export function createBilling(deps: BillingDeps): Billing {
  const { database, log, config } = deps;
  const clock = deps.clock ?? systemClock;
  const rates = createRateSource(config.rates, clock);
  if (deps.metrics !== undefined) {
    // Read at scrape time from the table every replica shares: the same figure on each.
    new Gauge({
      name: 'tollhouse_stripe_sync_failing_statements',
      help: 'Statements whose Stripe sync is failing (retried with backoff); see GET /v1/billing/stripe-sync',
      registers: [deps.metrics.registry],
      async collect() {
        try {
          this.set(await countFailingSyncs(database.db));
        } catch (error) {
          log.warn({ err: error }, 'could not count failing Stripe syncs');
        }
      },
    });
  }
  const service = createBillingService({
    db: database.db,
    usage: deps.usage,
    directory: deps.directory,
    rates,
    log,
    clock,
    events: deps.events,
  });
  const spendGate = createSpendView({
    db: database.db,
    usage: deps.usage,
    listen: database.listen,
    rates,
    log: log.child({ component: 'spend-view' }),
    clock,
    refreshMs: config.spendRefreshMs,
    fullReloadMs: config.spendFullReloadMs,
    prepaidReserveUsdMicros: config.prepaidReserveUsdMicros,
  });
  const stripeClient = createStripeClient(config.stripe);
  const stripe = createStripeSync({
    db: database.db,
    stripe: stripeClient,
    config: config.stripe,
    log,
    clock,
    handleEvent: createPrepaidWebhooks({
      events: deps.events,
      clock,
      async setupIntentPaymentMethod(id) {
        if (stripeClient === null) return null;
        const intent = await stripeClient.setupIntents.retrieve(id);
        const pm = intent.payment_method;
        return typeof pm === 'string' ? pm : (pm?.id ?? null);
      },
    }),
  });
  const prepaid = createPrepaid({
    db: database.db,
    stripe,
    events: deps.events,
    usage: deps.usage,
    rates,
    log: log.child({ component: 'prepaid' }),
    clock,
    config: config.prepaid ?? DEFAULT_PREPAID_CONFIG,
    requireAccount: async (accountId) => {
      if ((await deps.directory.account(accountId)) === null) {
        throw new NotFound(`No account ${accountId}`);
      }
    },
  });
  let timer: NodeJS.Timeout | null = null;
  let jobs: Promise<void> | null = null;

  /**
   * Scheduled close: every replica may try; closeMonth serialises on a transaction-scoped
   * advisory lock and is idempotent, so exactly one replica closes and the others find the
   * month closed when they get the lock.
   */
  async function runJobs() {
    if (config.closeAfterMs !== null) {
      const now = clock();
      const previous = addMonths(monthOfDate(now), -1);
      const due =
        monthStart(addMonths(previous, 1)).getTime() + config.closeAfterMs <= now.getTime();
      const last = due ? await service.lastClose() : null;
      if (due && last?.month !== previous) {
        // Close every month from the one after the last closed, up to the previous one.
        let month = last === null ? previous : addMonths(last.month, 1);
        while (month <= previous) {
          await service.closeMonth(month);
          month = addMonths(month, 1);
        }
      }
    }
    if (stripe.configured) await stripe.run();
    await prepaid.run();
  }
  let prepaidTimer: NodeJS.Timeout | null = null;
  let prepaidPass: Promise<unknown> | null = null;

  return {
    name: 'billing',
    service,
    spendGate,
    stripe,
    rates,
    prepaid,
    runJobs,
    routes(router) {
      billingRoutes(router, {
        service,
        spend: spendGate,
        stripe,
        prepaid,
        authenticator: deps.authenticator,
        db: database.db,
      });
    },
    async start() {
      await spendGate.start();
      timer = setInterval(() => {
        jobs ??= runJobs()
          .catch((error: unknown) => log.warn({ err: error }, 'billing job failed'))
          .finally(() => {
            jobs = null;
          });
      }, config.jobIntervalMs);
      timer.unref();
      const every = config.prepaidIntervalMs ?? null;
      if (every !== null) {
        prepaidTimer = setInterval(() => {
          prepaidPass ??= prepaid
            .run()
            .catch((error: unknown) => log.warn({ err: error }, 'prepaid pass failed'))
            .finally(() => {
              prepaidPass = null;
            });
        }, every);
        prepaidTimer.unref();
      }
    },
    async close() {
      if (timer !== null) clearInterval(timer);
      if (prepaidTimer !== null) clearInterval(prepaidTimer);
      await jobs;
      await prepaidPass;
      await spendGate.close();
      rates.close();
    },
  };
}
