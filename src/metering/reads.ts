// What billing reads of metering's tables, and only through here: month-to-date spend for the
// spend gate, the usage a month close bills, and raw events for exports. The SQL is metering's
// (./queries.ts), so its tables and indexes can change without billing knowing them.
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../database.ts';
import type { StoredUsageEvent } from './model.ts';
import { listUsageEvents, sumBillableUsage, sumRollupFees } from './queries.ts';
import type { BillableUsage, EventCursor, PayerSpend } from './queries.ts';

export type { BillableUsage, PayerSpend };

// Events per query when streaming a month (an export): a page is a few hundred KB.
const EVENT_PAGE = 1_000;

export interface UsageReads {
  /**
   * fee_wei of [from, to) per account / app / end user, from the hourly rollups: `from` and
   * `to` are on hour boundaries (the spend gate's hot path, an indexed range read).
   */
  spendByPayer(from: Date, to: Date): Promise<PayerSpend[]>;
  /**
   * What the close of `month` bills (its events recorded up to `cutoff`, and earlier months'
   * recorded after `previousCutoff`), per account, origin month, pipeline, model and unit.
   * Runs in the close's transaction, so it reads the snapshot the statements are written in.
   */
  billableUsage(
    trx: Transaction<Database>,
    close: { month: string; cutoff: Date; previousCutoff: Date | null },
  ): Promise<BillableUsage[]>;
  /** Every event that occurred in [from, to), in (occurred_at, id) order, read in pages. */
  events(from: Date, to: Date): AsyncIterable<StoredUsageEvent>;
}

export function createUsageReads(db: Kysely<Database>): UsageReads {
  return {
    spendByPayer: (from, to) => sumRollupFees(db, from, to),
    billableUsage: (trx, close) =>
      sumBillableUsage(trx, close.month, close.cutoff, close.previousCutoff),
    async *events(from, to) {
      let cursor: EventCursor | null = null;
      for (;;) {
        const page = await listUsageEvents(db, { from, to }, cursor, EVENT_PAGE);
        yield* page;
        if (page.length < EVENT_PAGE) return;
        const last = page[page.length - 1]!;
        cursor = { occurredAt: last.occurredAt, id: last.id };
      }
    },
  };
}
