// The month close, as named steps: check the month is over → skip it if closed → in one
// transaction holding the close lock: check the order of months → fix the cutoff → read what
// metering says was used → price it into one statement per account → write statements,
// credits used, Stripe sync rows, the close and its audit line. Replicas serialise on the
// advisory lock, and `statements (account_id, month)` is unique.
import type { Kysely, Transaction } from 'kysely';
import type { BillableUsage, UsageReads } from '../metering/index.ts';
import { recordAudit } from '../platform/audit.ts';
import type { Clock } from '../platform/clock.ts';
import type { EventSink, OutboundEvent } from '../platform/events.ts';
import type { Database } from '../database.ts';
import { newId } from '../platform/ids.ts';
import type { Logger } from '../platform/log.ts';
import { MonthNotClosable } from './errors.ts';
import { addMonths, chargeLine, monthStart, statementTotals } from './pricing.ts';
import type { EthUsdRate } from './pricing.ts';
import {
  closeCutoff,
  findClose,
  findEffectivePlans,
  findLastClose,
  findPlans,
  insertClose,
  insertLedgerEntry,
  insertStatements,
  findSettledBalances,
  insertSyncRows,
  lockMonthClose,
  notifyBillingChanged,
  settleLedgerEntries,
} from './queries.ts';
import type { CloseRecord, Plan, Statement, StatementBalance, StatementLine } from './queries.ts';
import { findPrepaidModeAccounts } from './prepaid-queries.ts';
import type { RateSource } from './rates.ts';

export interface CloseResult {
  month: string;
  /** False when the month was already closed (nothing changed). */
  closed: boolean;
  cutoff: Date;
  statements: number;
}

export interface MonthCloseDeps {
  db: Kysely<Database>;
  usage: Pick<UsageReads, 'billableUsage'>;
  rates: RateSource;
  log: Logger;
  clock: Clock;
  /** Outbound events (notifications): `statement.closed`, one per statement, in the close. */
  events?: EventSink;
}

/** What pricing a month needs besides usage: plans, who is on which, credit balances. */
export interface Plans {
  byId: ReadonlyMap<string, Plan>;
  /** The plan of accounts without a subscription; null: usage is billed at cost. */
  defaultPlan: Plan | null;
  /** accountId → planId in force for the month. */
  effective: ReadonlyMap<string, string>;
}

export interface NewStatement {
  statement: Statement;
  lines: StatementLine[];
}

/**
 * Closes `month` (YYYY-MM): one immutable statement per account with usage billed in it or a
 * plan with a monthly fee. Idempotent: a closed month returns what was closed.
 */
export function createMonthClose(deps: MonthCloseDeps) {
  const { db, log } = deps;
  return async function closeMonth(month: string): Promise<CloseResult> {
    assertMonthOver(month, deps.clock());
    const done = await findClose(db, month);
    if (done !== null) return alreadyClosed(month, done);
    const rate = await deps.rates.current();
    const started = Date.now();
    const result = await db.transaction().execute(async (trx) => {
      await lockMonthClose(trx);
      const again = await findClose(trx, month);
      if (again !== null) return alreadyClosed(month, again);
      const last = await assertCloseOrder(trx, month);
      const cutoff = await closeCutoff(trx);
      const usage = await deps.usage.billableUsage(trx, {
        month,
        cutoff,
        previousCutoff: last?.cutoff ?? null,
      });
      const plans = await readPlans(trx, month);
      const byAccount = usageByAccount(usage, plans);
      const accountIds = [...byAccount.keys()];
      // The ledger entries this close can see are settled in this month first, so the balance
      // the statements price against is exactly the sum of what they show.
      await settleLedgerEntries(trx, accountIds, month);
      const settled = await findSettledBalances(trx, accountIds, month);
      const prepaidModes = await findPrepaidModeAccounts(trx, accountIds);
      const statements = priceStatements({
        month,
        cutoff,
        rate,
        byAccount,
        plans,
        settled,
        prepaidModes,
      });
      await writeClose(trx, { month, cutoff, rate, statements });
      await deps.events?.publish(
        trx,
        statements.map(({ statement }) => statementClosed(statement)),
      );
      return { month, closed: true, cutoff, statements: statements.length };
    });
    if (result.closed) {
      log.info({ month, statements: result.statements, ms: Date.now() - started }, 'month closed');
    }
    return result;
  };
}

/** The event a closed statement's account hears; one per statement (its id is the key). */
function statementClosed(statement: Statement): OutboundEvent {
  return {
    type: 'statement.closed',
    accountId: statement.accountId,
    key: `statement.closed:${statement.id}`,
    data: {
      statement_id: statement.id,
      month: statement.month,
      fee_wei: statement.feeWei.toString(),
      total_usd_micros: statement.totalUsdMicros.toString(),
      billing_mode: statement.billingMode,
      closing_balance_usd_micros: statement.balance?.closingUsdMicros.toString() ?? null,
    },
  };
}

function assertMonthOver(month: string, now: Date): void {
  if (monthStart(addMonths(month, 1)).getTime() > now.getTime()) {
    throw new MonthNotClosable(`${month} is not over yet`);
  }
}

function alreadyClosed(month: string, close: CloseRecord): CloseResult {
  return { month, closed: false, cutoff: close.cutoff, statements: close.statements };
}

/** Months close in order, each once: `month` must follow the last closed. */
async function assertCloseOrder(
  trx: Transaction<Database>,
  month: string,
): Promise<CloseRecord | null> {
  const last = await findLastClose(trx);
  if (last !== null && last.month > month) {
    throw new MonthNotClosable(`${last.month} is already closed; months close in order`);
  }
  if (last !== null && addMonths(last.month, 1) !== month) {
    throw new MonthNotClosable(`close ${addMonths(last.month, 1)} first; months close in order`);
  }
  return last;
}

async function readPlans(trx: Transaction<Database>, month: string): Promise<Plans> {
  const byId = new Map((await findPlans(trx)).map((p) => [p.id, p]));
  return {
    byId,
    defaultPlan: [...byId.values()].find((p) => p.isDefault) ?? null,
    effective: await findEffectivePlans(trx, month),
  };
}

/**
 * Who gets a statement, with their usage: every account with usage billed this month, and
 * every subscriber to a plan with a monthly fee (they pay it even in a month without usage).
 * Accounts in id order, so statements (and their ids' order) do not depend on the query plan.
 */
export function usageByAccount(
  usage: readonly BillableUsage[],
  plans: Plans,
): Map<string, BillableUsage[]> {
  const byAccount = new Map<string, BillableUsage[]>();
  for (const row of usage) {
    const list = byAccount.get(row.accountId) ?? [];
    list.push(row);
    byAccount.set(row.accountId, list);
  }
  for (const [accountId, planId] of plans.effective) {
    if ((plans.byId.get(planId)?.monthlyFeeUsdMicros ?? 0n) > 0n && !byAccount.has(accountId)) {
      byAccount.set(accountId, []);
    }
  }
  return new Map([...byAccount].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * One statement per account: each usage row priced by the account's plan (at cost without a
 * price), then the plan's fee and included amount, then credit from the balance. A prepaid
 * account (a prepaid plan, or billing mode `prepaid` when the month closes) settles the whole
 * month from its balance, even past zero; a postpaid one uses credit up to the balance and is
 * invoiced the rest. Every statement carries its balance movement: opening + credits + debits
 * − credit applied = closing.
 */
export function priceStatements(input: {
  month: string;
  cutoff: Date;
  rate: EthUsdRate;
  byAccount: ReadonlyMap<string, readonly BillableUsage[]>;
  plans: Plans;
  /** What the ledger settled per account (findSettledBalances); missing: nothing. */
  settled: ReadonlyMap<string, Omit<StatementBalance, 'closingUsdMicros'>>;
  /** Accounts in billing mode `prepaid` (besides those on a prepaid plan). */
  prepaidModes?: ReadonlySet<string>;
}): NewStatement[] {
  const { month, plans } = input;
  return [...input.byAccount].map(([accountId, usage]) => {
    const planId = plans.effective.get(accountId);
    const plan = planId === undefined ? plans.defaultPlan : (plans.byId.get(planId) ?? null);
    const prepaid = plan?.prepaid === true || (input.prepaidModes?.has(accountId) ?? false);
    const lines = statementLines(plan, usage, month, input.rate);
    const moved = input.settled.get(accountId) ?? {
      openingUsdMicros: 0n,
      creditsUsdMicros: 0n,
      debitsUsdMicros: 0n,
    };
    const totals = statementTotals({
      usageUsdMicros: lines.reduce((sum, l) => sum + l.chargeUsdMicros, 0n),
      monthlyFeeUsdMicros: plan?.monthlyFeeUsdMicros ?? 0n,
      includedUsdMicros: plan?.includedUsdMicros ?? 0n,
      balanceUsdMicros: moved.openingUsdMicros + moved.creditsUsdMicros + moved.debitsUsdMicros,
      prepaid,
    });
    return {
      statement: {
        id: newId('stmt'),
        accountId,
        month,
        planId: plan?.id ?? null,
        closedAt: input.cutoff,
        rate: input.rate,
        feeWei: lines.reduce((sum, l) => sum + l.feeWei, 0n),
        ...totals,
        billingMode: prepaid ? 'prepaid' : 'postpaid',
        balance: {
          ...moved,
          closingUsdMicros:
            moved.openingUsdMicros +
            moved.creditsUsdMicros +
            moved.debitsUsdMicros -
            totals.creditsAppliedUsdMicros,
        },
      },
      lines,
    };
  });
}

function statementLines(
  plan: Plan | null,
  usage: readonly BillableUsage[],
  month: string,
  rate: EthUsdRate,
): StatementLine[] {
  const prices = plan?.prices ?? [];
  return usage.map((u, i) => {
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
}

/** Statements, the credit each used (ledger), Stripe sync rows, the close, its audit line. */
async function writeClose(
  trx: Transaction<Database>,
  close: { month: string; cutoff: Date; rate: EthUsdRate; statements: readonly NewStatement[] },
): Promise<void> {
  const { month, cutoff, statements } = close;
  await insertStatements(trx, statements);
  const debited: string[] = [];
  for (const { statement } of statements) {
    if (statement.creditsAppliedUsdMicros > 0n) {
      await insertLedgerEntry(trx, {
        accountId: statement.accountId,
        kind: 'statement',
        amountUsdMicros: -statement.creditsAppliedUsdMicros,
        reference: `statement:${statement.id}`,
        memo:
          statement.billingMode === 'prepaid'
            ? `the ${month} usage settled from the prepaid balance`
            : `credit applied to the ${month} statement`,
      });
      debited.push(statement.accountId);
    }
  }
  // The statements' own debits belong to their month (the closing balance counts them).
  await settleLedgerEntries(trx, debited, month);
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
    details: {
      statements: statements.length,
      cutoff: cutoff.toISOString(),
      rate: close.rate.source,
    },
  });
  await notifyBillingChanged(trx, 'close');
}
