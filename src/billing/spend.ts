// The spend gate: "may this principal spend?" answered from memory, so the front door and
// the signer can ask on every request. The view holds month-to-date spend (fee_wei from the
// hourly usage rollups) per account, app and end user, the spend caps, and prepaid balances.
// It is refreshed three ways:
//   * every `refreshMs`: the rollups of the last two hours are re-read (cheap, indexed);
//   * every `fullReloadMs` and at each month start: the whole month is re-read, which also
//     picks up late events for older hours;
//   * on NOTIFY `tollhouse_billing` (caps, credits, subscriptions, closes): caps, balances and
//     plans are re-read at once; a `null` (LISTEN connection lost) reloads everything.
// Worst case (docs/metering-and-billing.md): a principal may overspend a cap by what it can spend in
// `refreshMs` plus the recorder's flush interval (≤ 100 ms) plus requests already admitted.
// If the database is unreachable the last view stays in force (logged) rather than refusing
// all traffic.
import type { Kysely } from 'kysely';
import type { Principal } from '../platform/auth.ts';
import { NO_PLAN_LIMITS } from '../platform/limits.ts';
import type { PlanLimits } from '../platform/limits.ts';
import type { Database, NotificationHandler } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import { PaymentRequired } from '../platform/spend.ts';
import type { SpendGate } from '../platform/spend.ts';
import { addMonths, monthOfDate, monthStart, weiToUsdMicros } from './pricing.ts';
import type { EthUsdRate } from './pricing.ts';
import {
  BILLING_CHANNEL,
  findEffectivePlans,
  findPlans,
  findSpendCaps,
  sumBalances,
} from './queries.ts';
import type { PayerSpend, UsageReads } from '../metering/index.ts';
import type { SpendCap } from './queries.ts';
import { findPrepaidAccounts } from './prepaid-queries.ts';
import type { RateSource } from './rates.ts';
import { createUnsettledLastMonth } from './unsettled.ts';
import type { Clock } from '../platform/clock.ts';

const HOUR_MS = 3_600_000;
// Notifications arriving together (a batch of cap changes) cause one reload.
const DEBOUNCE_MS = 50;

export interface SpendViewDeps {
  db: Kysely<Database>;
  /** Metering's spend per payer (the rollups); caps, balances and plans are billing's. */
  usage: Pick<UsageReads, 'spendByPayer'>;
  listen: (channel: string, handler: NotificationHandler) => Promise<() => Promise<void>>;
  rates: RateSource;
  log: Logger;
  clock: Clock;
  refreshMs: number;
  fullReloadMs: number;
  /** Prepaid accounts are refused at or below this spendable balance (micro-dollars). */
  prepaidReserveUsdMicros?: bigint;
}

export interface SpendView extends SpendGate {
  assertMaySpend(principal: Principal): void;
  /**
   * The front-door limits of the plan in force for `accountId` this month (its subscription,
   * else the default plan), from the same view: replaced on NOTIFY like caps and plans. The
   * same object is returned until the next reload (the front door caches on identity).
   */
  planLimits(accountId: string): PlanLimits;
  /** Re-reads everything now (tests, CLI). */
  reload(): Promise<void>;
  /** Re-reads the recent rollups now. */
  refresh(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
  stats(): { month: string; accounts: number; refusals: number; lastRefresh: Date | null };
}

type Totals = Map<string, bigint>;
interface Spend {
  account: Totals;
  app: Totals;
  /** `${appId}\u0000${endUserId}` */
  endUser: Totals;
}

const emptySpend = (): Spend => ({ account: new Map(), app: new Map(), endUser: new Map() });

function addSpend(into: Spend, rows: readonly PayerSpend[]) {
  const add = (map: Totals, key: string, wei: bigint) => map.set(key, (map.get(key) ?? 0n) + wei);
  for (const r of rows) {
    add(into.account, r.accountId, r.feeWei);
    if (r.appId !== '') add(into.app, r.appId, r.feeWei);
    if (r.appId !== '' && r.endUserId !== '')
      add(into.endUser, `${r.appId}\u0000${r.endUserId}`, r.feeWei);
  }
}

function mergeSpend(a: Spend, b: Spend): Spend {
  const merged = emptySpend();
  for (const key of ['account', 'app', 'endUser'] as const) {
    for (const source of [a[key], b[key]]) {
      for (const [k, v] of source) merged[key].set(k, (merged[key].get(k) ?? 0n) + v);
    }
  }
  return merged;
}

interface Refusals {
  account: Map<string, string>;
  app: Map<string, string>;
  endUser: Map<string, string>;
  /** Apps whose every end user without an own cap is capped at zero. */
  appEndUsersAtZero: Map<string, string>;
  /** End users with an own cap (the app-wide '*' cap does not apply to them). */
  ownEndUserCaps: Set<string>;
  /** The default plan is prepaid: accounts without a subscription need a positive balance. */
  defaultPrepaid: boolean;
  subscribed: Set<string>;
  funded: Set<string>;
}

const PREPAID_USED_UP = 'The prepaid balance is used up; add credit to continue';

export function createSpendView(deps: SpendViewDeps): SpendView {
  const { db, log, clock, rates } = deps;
  const reserve = deps.prepaidReserveUsdMicros ?? 0n;
  let month = '';
  let tailFrom = new Date(0);
  let base = emptySpend();
  let tail = emptySpend();
  let caps: SpendCap[] = [];
  let balances = new Map<string, bigint>();
  let prepaid = new Set<string>();
  let rate: EthUsdRate | null = null;
  let defaultPrepaid = false;
  let subscribed = new Set<string>();
  let limitsByAccount = new Map<string, PlanLimits>();
  let defaultLimits: PlanLimits = NO_PLAN_LIMITS;
  let lastFull = 0;
  let lastRefresh: Date | null = null;
  // Last month's usage that its close has not settled yet (billing/unsettled.ts): it still
  // counts against a prepaid balance.
  const unsettledLastMonth = createUnsettledLastMonth({
    db,
    usage: deps.usage,
    clock,
    maxAgeMs: deps.fullReloadMs,
  });
  let unsettled = new Map<string, bigint>();
  let refusals: Refusals = {
    account: new Map(),
    app: new Map(),
    endUser: new Map(),
    appEndUsersAtZero: new Map(),
    ownEndUserCaps: new Set(),
    defaultPrepaid: false,
    subscribed: new Set(),
    funded: new Set(),
  };
  let timer: NodeJS.Timeout | null = null;
  let debounce: NodeJS.Timeout | null = null;
  let stopListening: (() => Promise<void>) | null = null;
  let running: Promise<void> = Promise.resolve();

  /** Runs view updates one at a time, so a slow reload never interleaves with another. */
  function serial(task: () => Promise<void>): Promise<void> {
    running = running.then(task).catch((error: unknown) => {
      log.warn({ err: error }, 'spend view refresh failed; keeping the previous view');
    });
    return running;
  }

  function monthBounds(now: Date) {
    const current = monthOfDate(now);
    return { current, from: monthStart(current), to: monthStart(addMonths(current, 1)) };
  }

  async function loadConfig() {
    const now = clock();
    const { current } = monthBounds(now);
    caps = await findSpendCaps(db);
    const plans = await findPlans(db);
    const prepaidPlans = new Set(plans.filter((p) => p.prepaid).map((p) => p.id));
    defaultPrepaid = plans.find((p) => p.isDefault)?.prepaid ?? false;
    const effective = await findEffectivePlans(db, current);
    subscribed = new Set(effective.keys());
    const limitsByPlan = new Map(plans.map((p) => [p.id, p.limits]));
    defaultLimits = plans.find((p) => p.isDefault)?.limits ?? NO_PLAN_LIMITS;
    const nextLimits = new Map<string, PlanLimits>();
    for (const [accountId, planId] of effective) {
      nextLimits.set(accountId, limitsByPlan.get(planId) ?? NO_PLAN_LIMITS);
    }
    limitsByAccount = nextLimits;
    prepaid = new Set(
      [...effective].filter(([, planId]) => prepaidPlans.has(planId)).map(([a]) => a),
    );
    // Accounts an operator put in prepaid mode, whatever their plan.
    for (const p of await findPrepaidAccounts(db)) prepaid.add(p.accountId);
    balances = await sumBalances(db);
    if (defaultPrepaid) {
      // Every account without a subscription is prepaid: ask for the balances of all of
      // those that have spent this month (others have spent nothing yet).
      for (const accountId of mergeSpend(base, tail).account.keys()) {
        if (!effective.has(accountId)) prepaid.add(accountId);
      }
    }
    if (prepaid.size > 0 || defaultPrepaid) {
      unsettled = await unsettledLastMonth(current);
      if (defaultPrepaid) {
        for (const accountId of unsettled.keys()) {
          if (!effective.has(accountId)) prepaid.add(accountId);
        }
      }
    }
    if (prepaid.size > 0) {
      try {
        rate = await rates.current();
      } catch (error) {
        // Keep the previous rate; without any, prepaid accounts are refused (no fallback).
        log.warn({ err: error }, 'ETH/USD rate unavailable for the spend view');
      }
    }
  }

  async function loadSpend(full: boolean) {
    const now = clock();
    const { current, from, to } = monthBounds(now);
    if (full || current !== month) {
      const hourStart = Math.floor(now.getTime() / HOUR_MS) * HOUR_MS - HOUR_MS;
      const nextTailFrom = new Date(Math.max(hourStart, from.getTime()));
      const nextBase = emptySpend();
      addSpend(nextBase, await deps.usage.spendByPayer(from, nextTailFrom));
      const nextTail = emptySpend();
      addSpend(nextTail, await deps.usage.spendByPayer(nextTailFrom, to));
      month = current;
      tailFrom = nextTailFrom;
      base = nextBase;
      tail = nextTail;
      lastFull = now.getTime();
    } else {
      const nextTail = emptySpend();
      addSpend(nextTail, await deps.usage.spendByPayer(tailFrom, to));
      tail = nextTail;
    }
    lastRefresh = now;
  }

  /** Precomputes every refusal so the hot path is a few Map lookups. */
  function recompute() {
    const spend = mergeSpend(base, tail);
    const next: Refusals = {
      account: new Map(),
      app: new Map(),
      endUser: new Map(),
      appEndUsersAtZero: new Map(),
      ownEndUserCaps: new Set(),
      defaultPrepaid,
      subscribed,
      funded: new Set([...balances].filter(([, b]) => b > 0n).map(([a]) => a)),
    };
    for (const cap of caps) {
      if (cap.appId !== null && cap.endUserId !== null && cap.endUserId !== '*') {
        next.ownEndUserCaps.add(`${cap.appId}\u0000${cap.endUserId}`);
      }
    }
    const reason = (what: string, spent: bigint, cap: bigint) =>
      `${what} reached its monthly spend cap (${spent} of ${cap} wei this month)`;
    for (const cap of caps) {
      if (cap.appId === null) {
        const spent = spend.account.get(cap.accountId) ?? 0n;
        if (spent >= cap.monthlyCapWei) {
          next.account.set(
            cap.accountId,
            reason(`Account ${cap.accountId}`, spent, cap.monthlyCapWei),
          );
        }
      } else if (cap.endUserId === null) {
        const spent = spend.app.get(cap.appId) ?? 0n;
        if (spent >= cap.monthlyCapWei) {
          next.app.set(cap.appId, reason(`App ${cap.appId}`, spent, cap.monthlyCapWei));
        }
      } else if (cap.endUserId !== '*') {
        const key = `${cap.appId}\u0000${cap.endUserId}`;
        const spent = spend.endUser.get(key) ?? 0n;
        if (spent >= cap.monthlyCapWei) {
          next.endUser.set(key, reason(`End user ${cap.endUserId}`, spent, cap.monthlyCapWei));
        }
      } else {
        if (cap.monthlyCapWei === 0n) {
          next.appEndUsersAtZero.set(
            cap.appId,
            `End users of app ${cap.appId} may not spend (cap 0 wei)`,
          );
        }
        const prefix = `${cap.appId}\u0000`;
        for (const [key, spent] of spend.endUser) {
          if (!key.startsWith(prefix) || next.ownEndUserCaps.has(key)) continue;
          if (spent >= cap.monthlyCapWei) {
            next.endUser.set(
              key,
              reason(`End user ${key.slice(prefix.length)}`, spent, cap.monthlyCapWei),
            );
          }
        }
      }
    }
    for (const accountId of prepaid) {
      if (next.account.has(accountId)) continue;
      const balance = balances.get(accountId) ?? 0n;
      if (rate === null) {
        next.account.set(
          accountId,
          'Prepaid usage cannot be priced now (no ETH/USD rate); try again later',
        );
        continue;
      }
      const spentWei = (spend.account.get(accountId) ?? 0n) + (unsettled.get(accountId) ?? 0n);
      const spentUsd = weiToUsdMicros(spentWei, rate);
      if (balance - spentUsd <= reserve) {
        next.account.set(accountId, PREPAID_USED_UP);
      }
    }
    refusals = next;
  }

  const reload = () =>
    serial(async () => {
      await loadSpend(true);
      await loadConfig();
      recompute();
    });

  const refresh = () =>
    serial(async () => {
      const full =
        clock().getTime() - lastFull >= deps.fullReloadMs || monthOfDate(clock()) !== month;
      await loadSpend(full);
      // A full reload re-reads caps, balances and plans too: a safety net for a lost NOTIFY,
      // and at a month start the plans in force change.
      if (full) await loadConfig();
      recompute();
    });

  const onNotify: NotificationHandler = (payload) => {
    if (payload === null) {
      void reload();
      return;
    }
    if (debounce !== null) return;
    debounce = setTimeout(() => {
      debounce = null;
      void serial(async () => {
        await loadConfig();
        recompute();
      });
    }, DEBOUNCE_MS);
    debounce.unref();
  };

  return {
    planLimits: (accountId) => limitsByAccount.get(accountId) ?? defaultLimits,
    assertMaySpend(principal: Principal): void {
      const r = refusals;
      const account = r.account.get(principal.accountId);
      if (account !== undefined) throw new PaymentRequired(account);
      // Accounts on a prepaid default plan that have not spent this month yet: only a
      // positive balance lets them start.
      if (
        r.defaultPrepaid &&
        !r.subscribed.has(principal.accountId) &&
        !r.funded.has(principal.accountId)
      ) {
        throw new PaymentRequired(PREPAID_USED_UP);
      }
      const appId = principal.appId;
      if (appId === null) return;
      const app = r.app.get(appId);
      if (app !== undefined) throw new PaymentRequired(app);
      const endUserId = principal.endUserId;
      if (endUserId === null) return;
      const key = `${appId}\u0000${endUserId}`;
      const endUser = r.endUser.get(key);
      if (endUser !== undefined) throw new PaymentRequired(endUser);
      const zero = r.appEndUsersAtZero.get(appId);
      if (zero !== undefined && !r.ownEndUserCaps.has(key)) throw new PaymentRequired(zero);
    },
    reload,
    refresh,
    async start() {
      stopListening = await deps.listen(BILLING_CHANNEL, onNotify);
      await reload();
      timer = setInterval(() => void refresh(), deps.refreshMs);
      timer.unref();
    },
    async close() {
      if (timer !== null) clearInterval(timer);
      if (debounce !== null) clearTimeout(debounce);
      await stopListening?.();
      await running;
    },
    stats: () => ({
      month,
      accounts: mergeSpend(base, tail).account.size,
      refusals: refusals.account.size + refusals.app.size + refusals.endUser.size,
      lastRefresh,
    }),
  };
}
