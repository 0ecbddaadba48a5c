// Billing rules: plans (immutable once created), subscriptions that change at a month
// boundary, the append-only ledger, spend caps, and the month close that turns usage into
// immutable statements. Every change that the spend view depends on NOTIFYs in its transaction.
import type { Kysely } from 'kysely';
import { findAccountById } from '../identity/index.ts';
import { recordAudit } from '../platform/audit.ts';
import type { Database } from '../database.ts';
import { Conflict, InvalidRequest, NotFound } from '../platform/errors.ts';
import { newId } from '../platform/ids.ts';
import type { Logger } from '../platform/log.ts';
import { MonthNotClosable } from './errors.ts';
import { addMonths, chargeLine, monthOfDate, monthStart, statementTotals } from './pricing.ts';
import type { Price } from './pricing.ts';
import {
  clearDefaultPlan,
  closeCutoff,
  deleteSpendCap,
  findClose,
  findEffectivePlans,
  findLastClose,
  findLedgerEntries,
  findPlans,
  findSpendCaps,
  findStatementById,
  findStatementLines,
  findSubscriptions,
  insertClose,
  insertLedgerEntry,
  insertPlan,
  insertStatements,
  insertSyncRows,
  listStatements,
  lockMonthClose,
  notifyBillingChanged,
  sumBalances,
  upsertSpendCap,
  upsertSubscription,
} from './queries.ts';
import type { Plan, SpendCap, Statement, StatementLine } from './queries.ts';
import type { BillableUsage, UsageReads } from '../metering/index.ts';
import type { RateSource } from './rates.ts';
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
  prices: Price[];
}

export interface CloseResult {
  month: string;
  /** False when the month was already closed (nothing changed). */
  closed: boolean;
  cutoff: Date;
  statements: number;
}

export interface BillingServiceDeps {
  db: Kysely<Database>;
  /** Metering's usage, read in the close's transaction. */
  usage: Pick<UsageReads, 'billableUsage'>;
  rates: RateSource;
  log: Logger;
  clock: Clock;
}

export type BillingService = ReturnType<typeof createBillingService>;

export function createBillingService({
  db,
  usage: meteringUsage,
  rates,
  log,
  clock,
}: BillingServiceDeps) {
  async function requireAccount(accountId: string) {
    if ((await findAccountById(db, accountId)) === undefined) {
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
      await insertPlan(trx, { ...input, id });
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

  /**
   * Closes `month` (YYYY-MM): one immutable statement per account with usage billed in it
   * or a plan with a monthly fee. Idempotent: a closed month returns what was closed.
   * Replicas serialise on an advisory lock, and `statements (account_id, month)` is unique.
   */
  async function closeMonth(month: string): Promise<CloseResult> {
    const now = clock();
    if (monthStart(addMonths(month, 1)).getTime() > now.getTime()) {
      throw new MonthNotClosable(`${month} is not over yet`);
    }
    const done = await findClose(db, month);
    if (done !== null)
      return { month, closed: false, cutoff: done.cutoff, statements: done.statements };
    const rate = await rates.current();
    const started = Date.now();
    const result = await db.transaction().execute(async (trx) => {
      await lockMonthClose(trx);
      const again = await findClose(trx, month);
      if (again !== null) {
        return { month, closed: false, cutoff: again.cutoff, statements: again.statements };
      }
      const last = await findLastClose(trx);
      if (last !== null && last.month > month) {
        throw new MonthNotClosable(`${last.month} is already closed; months close in order`);
      }
      if (last !== null && addMonths(last.month, 1) !== month) {
        throw new MonthNotClosable(
          `close ${addMonths(last.month, 1)} first; months close in order`,
        );
      }
      const cutoff = await closeCutoff(trx);
      const usage = await meteringUsage.billableUsage(trx, {
        month,
        cutoff,
        previousCutoff: last?.cutoff ?? null,
      });
      const byAccount = new Map<string, BillableUsage[]>();
      for (const row of usage) {
        const list = byAccount.get(row.accountId) ?? [];
        list.push(row);
        byAccount.set(row.accountId, list);
      }
      const plans = new Map((await findPlans(trx)).map((p) => [p.id, p]));
      const defaultPlan = [...plans.values()].find((p) => p.isDefault) ?? null;
      const effective = await findEffectivePlans(trx, month);
      // Subscribed accounts pay their plan's fee even in a month without usage.
      for (const [accountId, planId] of effective) {
        if ((plans.get(planId)?.monthlyFeeUsdMicros ?? 0n) > 0n && !byAccount.has(accountId)) {
          byAccount.set(accountId, []);
        }
      }
      const accounts = [...byAccount.keys()].sort();
      const balances = await sumBalances(trx, accounts);
      const statements: Array<{ statement: Statement; lines: StatementLine[] }> = [];
      for (const accountId of accounts) {
        const planId = effective.get(accountId);
        const plan = planId === undefined ? defaultPlan : (plans.get(planId) ?? null);
        const prices = plan?.prices ?? [];
        const lines: StatementLine[] = (byAccount.get(accountId) ?? []).map((u, i) => {
          const charge = chargeLine(prices, u, rate);
          return {
            line: i + 1,
            originMonth: u.originMonth,
            late: u.originMonth < month,
            pipeline: u.pipeline,
            modelId: u.modelId,
            unit: u.unit,
            events: u.events,
            quantity: u.quantity,
            feeWei: u.feeWei,
            priceCurrency: charge.price.currency,
            priceAmount: charge.price.amount,
            pricePerUnits: charge.price.perUnits,
            chargeWei: charge.chargeWei,
            chargeUsdMicros: charge.chargeUsdMicros,
          };
        });
        const totals = statementTotals({
          usageUsdMicros: lines.reduce((sum, l) => sum + l.chargeUsdMicros, 0n),
          monthlyFeeUsdMicros: plan?.monthlyFeeUsdMicros ?? 0n,
          includedUsdMicros: plan?.includedUsdMicros ?? 0n,
          balanceUsdMicros: balances.get(accountId) ?? 0n,
        });
        statements.push({
          statement: {
            id: newId('stmt'),
            accountId,
            month,
            planId: plan?.id ?? null,
            closedAt: cutoff,
            rate,
            feeWei: lines.reduce((sum, l) => sum + l.feeWei, 0n),
            ...totals,
          },
          lines,
        });
      }
      await insertStatements(trx, statements);
      for (const { statement } of statements) {
        if (statement.creditsAppliedUsdMicros > 0n) {
          await insertLedgerEntry(trx, {
            accountId: statement.accountId,
            kind: 'statement',
            amountUsdMicros: -statement.creditsAppliedUsdMicros,
            reference: `statement:${statement.id}`,
            memo: `credit applied to the ${month} statement`,
          });
        }
      }
      await insertSyncRows(
        trx,
        statements.map(({ statement }) => ({
          statementId: statement.id,
          state: statement.totalUsdMicros > 0n ? 'pending' : 'skipped',
        })),
      );
      await insertClose(trx, { month, cutoff, statements: statements.length });
      await recordAudit(trx, {
        actor: 'system',
        action: 'billing.close',
        subject: month,
        details: { statements: statements.length, cutoff: cutoff.toISOString(), rate: rate.source },
      });
      await notifyBillingChanged(trx, 'close');
      return { month, closed: true, cutoff, statements: statements.length };
    });
    if (result.closed) {
      log.info({ month, statements: result.statements, ms: Date.now() - started }, 'month closed');
    }
    return result;
  }

  async function statement(id: string) {
    const found = await findStatementById(db, id);
    if (found === null) throw new NotFound(`No statement ${id}`);
    return { statement: found, lines: await findStatementLines(db, id) };
  }

  return {
    createPlan,
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
