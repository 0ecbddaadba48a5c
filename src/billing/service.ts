// Billing rules: plans (immutable once created), subscriptions that change at a month
// boundary, the append-only ledger, spend caps, and the month close that turns usage into
// immutable statements. Every change that the spend view depends on NOTIFYs in its transaction.
import { NO_PLAN_LIMITS } from '../platform/limits.ts';
import type { PlanLimits } from '../platform/limits.ts';
import type { Kysely } from 'kysely';
import type { Directory } from '../platform/directory.ts';
import { recordAudit } from '../platform/audit.ts';
import type { Database } from '../database.ts';
import { Conflict, InvalidRequest, NotFound } from '../platform/errors.ts';
import { newId } from '../platform/ids.ts';
import type { Logger } from '../platform/log.ts';
import { createMonthClose } from './close.ts';
import { addMonths, monthOfDate } from './pricing.ts';
import type { Price } from './pricing.ts';
import {
  clearDefaultPlan,
  deleteSpendCap,
  findEffectivePlans,
  findLastClose,
  findLedgerEntries,
  findPlans,
  findSpendCaps,
  findStatementById,
  findStatementLines,
  findSettledEntries,
  findSubscriptions,
  insertLedgerEntry,
  insertPlan,
  updatePlanLimits,
  listStatements,
  notifyBillingChanged,
  sumBalances,
  upsertSpendCap,
  upsertSubscription,
} from './queries.ts';
import type { Plan, SpendCap } from './queries.ts';
import type { UsageReads } from '../metering/index.ts';
import type { RateSource } from './rates.ts';
import type { EventSink } from '../platform/events.ts';
import type { Clock } from '../platform/clock.ts';

/** Who acts, for the audit log: `key_…`, `acct_…` or `cli`. */
export interface Actor {
  actor: string;
  requestId: string | null;
}

export interface NewPlan {
  id?: string | undefined;
  name: string;
  monthlyFeeUsdMicros: bigint;
  includedUsdMicros: bigint;
  prepaid: boolean;
  isDefault: boolean;
  /** Front-door limits (absent: the settings apply). */
  limits?: PlanLimits | undefined;
  prices: Price[];
}

export type { CloseResult } from './close.ts';

export interface BillingServiceDeps {
  db: Kysely<Database>;
  /** Metering's usage, read in the close's transaction. */
  usage: Pick<UsageReads, 'billableUsage'>;
  rates: RateSource;
  /** Whether an account exists (identity's, through the platform port). */
  directory: Pick<Directory, 'account'>;
  log: Logger;
  clock: Clock;
  /** Outbound events (notifications); the month close publishes `statement.closed`. */
  events?: EventSink;
}

export type BillingService = ReturnType<typeof createBillingService>;

export function createBillingService({
  db,
  usage: meteringUsage,
  rates,
  directory,
  log,
  clock,
  events,
}: BillingServiceDeps) {
  async function requireAccount(accountId: string) {
    if ((await directory.account(accountId)) === null) {
      throw new NotFound(`No account ${accountId}`);
    }
  }

  async function planById(id: string): Promise<Plan> {
    const [plan] = await findPlans(db, [id]);
    if (plan === undefined) throw new NotFound(`No plan ${id}`);
    return plan;
  }

  async function createPlan(actor: Actor, input: NewPlan): Promise<Plan> {
    const id = input.id ?? newId('plan');
    const keys = new Set(input.prices.map((p) => `${p.pipeline}\u0000${p.modelId}\u0000${p.unit}`));
    if (keys.size !== input.prices.length) {
      throw new InvalidRequest('body.prices: two prices for the same pipeline, model and unit');
    }
    await db.transaction().execute(async (trx) => {
      if ((await findPlans(trx, [id])).length > 0) throw new Conflict(`Plan ${id} exists`);
      if (input.isDefault) await clearDefaultPlan(trx);
      await insertPlan(trx, { ...input, id, limits: input.limits ?? NO_PLAN_LIMITS });
      await recordAudit(trx, {
        actor: actor.actor,
        action: 'plan.create',
        subject: id,
        requestId: actor.requestId,
        details: { name: input.name, default: input.isDefault },
      });
      await notifyBillingChanged(trx, 'plans');
    });
    return planById(id);
  }

  /**
   * Replaces a plan's front-door limits. Unlike prices (immutable: statements refer to them),
   * limits bill nothing, so an operator may raise or lower a tier's limits in place; every
   * replica applies the change on the NOTIFY sent with it.
   */
  async function setPlanLimits(actor: Actor, id: string, limits: PlanLimits): Promise<Plan> {
    await db.transaction().execute(async (trx) => {
      if (!(await updatePlanLimits(trx, id, limits))) throw new NotFound(`No plan ${id}`);
      await recordAudit(trx, {
        actor: actor.actor,
        action: 'plan.limits',
        subject: id,
        requestId: actor.requestId,
        details: { ...limits },
      });
      await notifyBillingChanged(trx, 'plans');
    });
    return planById(id);
  }

  /** The plan in force for `accountId` during `month`, and where it comes from. */
  async function planFor(accountId: string, month: string) {
    const effective = await findEffectivePlans(db, month);
    const planId = effective.get(accountId);
    if (planId !== undefined) return planById(planId);
    return (await findPlans(db)).find((p) => p.isDefault) ?? null;
  }

  async function subscription(accountId: string) {
    await requireAccount(accountId);
    const now = monthOfDate(clock());
    const history = await findSubscriptions(db, accountId);
    const current = await planFor(accountId, now);
    return { accountId, currentMonth: now, currentPlan: current, history };
  }

  /**
   * Moves `accountId` to `planId` from the first day of `effectiveMonth` (default: next
   * month). A month already under way may be named only if no statement can exist for it;
   * closed months never change.
   */
  async function subscribe(
    actor: Actor,
    accountId: string,
    planId: string,
    effectiveMonth?: string,
  ) {
    await requireAccount(accountId);
    await planById(planId);
    const now = monthOfDate(clock());
    const month = effectiveMonth ?? addMonths(now, 1);
    if (month < now) {
      throw new InvalidRequest('body.effective_month: a plan change cannot start in the past');
    }
    await db.transaction().execute(async (trx) => {
      const last = await findLastClose(trx);
      if (last !== null && last.month >= month) {
        throw new Conflict(`${month} is closed; choose a later month`);
      }
      await upsertSubscription(trx, accountId, planId, month);
      await recordAudit(trx, {
        actor: actor.actor,
        action: 'subscription.change',
        subject: accountId,
        requestId: actor.requestId,
        details: { planId, effectiveMonth: month },
      });
      await notifyBillingChanged(trx, `account:${accountId}`);
    });
    return subscription(accountId);
  }

  /** Credits (or debits) the ledger once per `reference`; false when it was recorded before. */
  async function addLedgerEntry(
    actor: Actor,
    entry: {
      accountId: string;
      kind: 'top_up' | 'grant' | 'adjustment';
      amountUsdMicros: bigint;
      reference: string;
      memo?: string | null;
    },
  ): Promise<boolean> {
    await requireAccount(entry.accountId);
    return db.transaction().execute(async (trx) => {
      const added = await insertLedgerEntry(trx, entry);
      if (added) {
        await recordAudit(trx, {
          actor: actor.actor,
          action: `ledger.${entry.kind}`,
          subject: entry.accountId,
          requestId: actor.requestId,
          details: {
            amountUsdMicros: entry.amountUsdMicros.toString(),
            reference: entry.reference,
          },
        });
        await notifyBillingChanged(trx, `account:${entry.accountId}`);
      }
      return added;
    });
  }

  async function balance(accountId: string) {
    await requireAccount(accountId);
    const balances = await sumBalances(db, [accountId]);
    return {
      accountId,
      balanceUsdMicros: balances.get(accountId) ?? 0n,
      entries: await findLedgerEntries(db, accountId, 100),
    };
  }

  async function setSpendCap(
    actor: Actor,
    cap: SpendCap | (Omit<SpendCap, 'monthlyCapWei'> & { monthlyCapWei: null }),
  ) {
    await requireAccount(cap.accountId);
    if (cap.endUserId !== null && cap.appId === null) {
      throw new InvalidRequest(
        'body.app_id: an end-user cap names the app the end user belongs to',
      );
    }
    await db.transaction().execute(async (trx) => {
      if (cap.monthlyCapWei === null) await deleteSpendCap(trx, cap);
      else await upsertSpendCap(trx, cap);
      await recordAudit(trx, {
        actor: actor.actor,
        action: 'spend_cap.set',
        subject: cap.accountId,
        requestId: actor.requestId,
        details: {
          appId: cap.appId,
          endUserId: cap.endUserId,
          monthlyCapWei: cap.monthlyCapWei?.toString() ?? null,
        },
      });
      await notifyBillingChanged(trx, `account:${cap.accountId}`);
    });
    return findSpendCaps(db, cap.accountId);
  }

  const closeMonth = createMonthClose({ db, usage: meteringUsage, rates, log, clock, events });

  async function statement(id: string) {
    const found = await findStatementById(db, id);
    if (found === null) throw new NotFound(`No statement ${id}`);
    return {
      statement: found,
      lines: await findStatementLines(db, id),
      entries: await findSettledEntries(db, found.accountId, found.month),
    };
  }

  return {
    createPlan,
    setPlanLimits,
    plans: () => findPlans(db),
    plan: planById,
    planFor,
    subscription,
    subscribe,
    addLedgerEntry,
    balance,
    spendCaps: async (accountId: string) => {
      await requireAccount(accountId);
      return findSpendCaps(db, accountId);
    },
    setSpendCap,
    closeMonth,
    lastClose: () => findLastClose(db),
    statement,
    /** Who owns statement `id` (the route guard's ownership check), or null. */
    statementOwner: async (id: string) => {
      const found = await findStatementById(db, id);
      return found === null ? null : { accountId: found.accountId };
    },
    statements: (filter: { accountId?: string; month?: string; after?: string }, limit: number) =>
      listStatements(db, filter, limit),
  };
}
