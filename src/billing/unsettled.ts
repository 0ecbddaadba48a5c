// Last month's usage that no statement has settled yet. A prepaid month is settled from the
// balance by its close (a ledger debit), but the close runs BILLING_CLOSE_AFTER_HOURS after
// the month ends; until then that usage is in neither the ledger nor the current month's
// rollups, and a prepaid account could spend it a second time. The spend gate and the prepaid
// pass (balance alerts, auto-recharge, the spendable figure) both count it through this.
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import type { UsageReads } from '../metering/index.ts';
import type { Clock } from '../platform/clock.ts';
import { addMonths, monthStart } from './pricing.ts';
import { findStatementAccounts } from './queries.ts';

export type UnsettledLastMonth = (currentMonth: string) => Promise<Map<string, bigint>>;

/**
 * Per account, the wei spent in the month before `currentMonth` whose statement is not
 * written yet. The month's totals are re-read at most every `maxAgeMs` (late events); which
 * accounts are closed is asked on every call, so a close stops the count at once.
 */
export function createUnsettledLastMonth(deps: {
  db: Kysely<Database>;
  usage: Pick<UsageReads, 'spendByPayer'>;
  clock: Clock;
  maxAgeMs: number;
}): UnsettledLastMonth {
  let cached: { month: string; readAt: number; wei: Map<string, bigint> } | null = null;
  return async function unsettledLastMonth(currentMonth) {
    const previous = addMonths(currentMonth, -1);
    const now = deps.clock().getTime();
    if (cached?.month !== previous || now - cached.readAt >= deps.maxAgeMs) {
      const rows = await deps.usage.spendByPayer(monthStart(previous), monthStart(currentMonth));
      const wei = new Map<string, bigint>();
      for (const r of rows) wei.set(r.accountId, (wei.get(r.accountId) ?? 0n) + r.feeWei);
      cached = { month: previous, readAt: now, wei };
    }
    if (cached.wei.size === 0) return new Map();
    const closed = await findStatementAccounts(deps.db, previous);
    return new Map([...cached.wei].filter(([accountId]) => !closed.has(accountId)));
  };
}
