// Stripe: a customer per account; each closed statement with something to pay becomes a
// draft invoice with one invoice item per statement line (plus the fee, included usage and
// credits applied), then is finalized if configured. Every call carries a deterministic
// Idempotency-Key derived from the statement, and progress is saved after each step, so a
// retry after a failure or a crash repeats nothing: Stripe answers a replayed key with the
// original object. (Stripe keeps keys for at least 24 hours; a sync retried after longer than
// that could duplicate a step, so `stripe-sync` retries with backoff capped at 6 hours.)
import Stripe from 'stripe';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import { InvalidSignature, StripeNotConfigured } from './errors.ts';
import {
  countSyncsByMonth,
  findClose,
  findCustomerId,
  findRecentCloses,
  findDueSyncs,
  findStatementById,
  findStatementLines,
  findSync,
  insertCustomer,
  insertStripeEvent,
  pageSyncStatus,
  updateSync,
  updateSyncByInvoice,
} from './queries.ts';
import type { Statement, StatementLine, SyncStatus, SyncStatusRow } from './queries.ts';
import type { SyncState } from './table.ts';
import type { Clock } from '../platform/clock.ts';

export interface StripeSyncStatusQuery {
  /** How many of the most recently closed months to report (ignored with `month`). */
  months: number;
  month?: string;
  status?: SyncStatus;
  after: string | null;
  limit: number;
}

export interface StripeSyncStatus {
  configured: boolean;
  webhooksConfigured: boolean;
  finalizeInvoices: boolean;
  months: Array<{
    month: string;
    closedAt: Date;
    statements: number;
    byStatus: Record<SyncStatus, number>;
    byState: Record<SyncState, number>;
  }>;
  /** null when the cursor names no sync row. */
  statements: SyncStatusRow[] | null;
}

export interface StripeConfig {
  secretKey: string | null;
  webhookSecret: string | null;
  /** e.g. http://127.0.0.1:12111 for a local fake; null → api.stripe.com. */
  apiBase: string | null;
  finalize: boolean;
  /** Days a customer has to pay a sent invoice. */
  daysUntilDue: number;
}

// Backoff between sync attempts: 30 s doubling, capped at 6 h (inside Stripe's 24 h
// idempotency window).
const FIRST_RETRY_MS = 30_000;
const MAX_RETRY_MS = 6 * 3_600_000;
// Webhooks older than this are refused as replays (Stripe's own default tolerance).
const WEBHOOK_TOLERANCE_SECONDS = 300;

export function createStripeClient(config: StripeConfig): Stripe | null {
  if (config.secretKey === null) return null;
  const options: ConstructorParameters<typeof Stripe>[1] = {
    // Retries of one call are ours (with the same idempotency key), not the SDK's.
    maxNetworkRetries: 0,
    timeout: 20_000,
  };
  if (config.apiBase !== null) {
    const base = new URL(config.apiBase);
    options.host = base.hostname;
    options.port = base.port || (base.protocol === 'https:' ? '443' : '80');
    options.protocol = base.protocol === 'https:' ? 'https' : 'http';
  }
  return new Stripe(config.secretKey, options);
}

/** `123456789` micro-dollars → `12345.6789` cents, exact (Stripe accepts 12 decimals). */
export function microsToCentsDecimal(micros: bigint): string {
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const cents = abs / 10_000n;
  const frac = (abs % 10_000n).toString().padStart(4, '0');
  return `${negative ? '-' : ''}${cents}.${frac}`;
}

/** The invoice items of a statement, in a fixed order (their index is in the idempotency key). */
export function invoiceItems(statement: Statement, lines: readonly StatementLine[]) {
  const items: Array<{ description: string; micros: bigint; line: string }> = [];
  if (statement.monthlyFeeUsdMicros > 0n) {
    items.push({
      description: `Monthly fee ${statement.month}`,
      micros: statement.monthlyFeeUsdMicros,
      line: 'fee',
    });
  }
  for (const l of lines) {
    if (l.chargeUsdMicros === 0n) continue;
    const model = l.modelId === '' ? '' : ` ${l.modelId}`;
    items.push({
      description: `${l.pipeline}${model}: ${l.quantity} ${l.unit}${l.late ? ` (late usage from ${l.originMonth})` : ''}`,
      micros: l.chargeUsdMicros,
      line: String(l.line),
    });
  }
  if (statement.includedAppliedUsdMicros > 0n) {
    items.push({
      description: 'Included usage',
      micros: -statement.includedAppliedUsdMicros,
      line: 'included',
    });
  }
  if (statement.creditsAppliedUsdMicros > 0n) {
    items.push({
      description: 'Prepaid credit applied',
      micros: -statement.creditsAppliedUsdMicros,
      line: 'credits',
    });
  }
  return items;
}

export interface StripeSyncDeps {
  db: Kysely<Database>;
  stripe: Stripe | null;
  config: StripeConfig;
  log: Logger;
  clock: Clock;
  /** Applies the events that are not about invoices (prepaid top-ups, refunds, disputes). */
  handleEvent?: (trx: Transaction<Database>, event: Stripe.Event) => Promise<'applied' | 'ignored'>;
}

export type StripeSync = ReturnType<typeof createStripeSync>;

export function createStripeSync({ db, stripe, config, log, clock, handleEvent }: StripeSyncDeps) {
  function client(): Stripe {
    if (stripe === null)
      throw new StripeNotConfigured('Stripe is not configured: set STRIPE_SECRET_KEY');
    return stripe;
  }

  async function customerFor(accountId: string): Promise<string> {
    const known = await findCustomerId(db, accountId);
    if (known !== null) return known;
    const customer = await client().customers.create(
      { metadata: { tollhouse_account_id: accountId }, description: `tollhouse ${accountId}` },
      { idempotencyKey: `tollhouse-customer-${accountId}` },
    );
    await insertCustomer(db, accountId, customer.id);
    return (await findCustomerId(db, accountId)) ?? customer.id;
  }

  /** Pushes one statement as far as it can go; throws on a Stripe or network failure. */
  async function syncStatement(statementId: string): Promise<string> {
    const sync = await findSync(db, statementId);
    if (sync === undefined) throw new Error(`no sync state for ${statementId}`);
    if (sync.state !== 'pending') return sync.state;
    const statement = await findStatementById(db, statementId);
    if (statement === null) throw new Error(`no statement ${statementId}`);
    const lines = await findStatementLines(db, statementId);
    const api = client();
    const customer = await customerFor(statement.accountId);
    let invoiceId = sync.invoice_id;
    if (invoiceId === null) {
      const invoice = await api.invoices.create(
        {
          customer,
          collection_method: 'send_invoice',
          days_until_due: config.daysUntilDue,
          auto_advance: false,
          // Only the items made for this statement belong on it.
          pending_invoice_items_behavior: 'exclude',
          description: `Usage statement ${statement.month}`,
          metadata: { tollhouse_statement_id: statement.id, tollhouse_month: statement.month },
        },
        { idempotencyKey: `tollhouse-${statement.id}-invoice` },
      );
      invoiceId = invoice.id;
      await updateSync(db, statementId, { invoice_id: invoiceId });
    }
    const items = invoiceItems(statement, lines);
    for (let i = sync.items_pushed; i < items.length; i++) {
      const item = items[i]!;
      await api.invoiceItems.create(
        {
          customer,
          invoice: invoiceId,
          currency: 'usd',
          quantity: 1,
          unit_amount_decimal: Stripe.Decimal.from(microsToCentsDecimal(item.micros)),
          description: item.description,
          metadata: { tollhouse_statement_id: statement.id, tollhouse_line: item.line },
        },
        { idempotencyKey: `tollhouse-${statement.id}-item-${item.line}` },
      );
      await updateSync(db, statementId, { items_pushed: i + 1 });
    }
    let state: 'invoiced' | 'finalized' = 'invoiced';
    if (config.finalize) {
      await api.invoices.finalizeInvoice(
        invoiceId,
        {},
        { idempotencyKey: `tollhouse-${statement.id}-finalize` },
      );
      state = 'finalized';
    }
    await updateSync(db, statementId, { state, last_error: null });
    return state;
  }

  /** Syncs every due statement (or one); failures are rescheduled with backoff. */
  async function run(options: { statementId?: string; limit?: number } = {}) {
    const now = clock();
    const due =
      options.statementId !== undefined
        ? [await findSync(db, options.statementId)].filter((s) => s !== undefined)
        : await findDueSyncs(db, now, options.limit ?? 100);
    const results: Array<{ statementId: string; state: string; error?: string }> = [];
    for (const sync of due) {
      try {
        results.push({
          statementId: sync.statement_id,
          state: await syncStatement(sync.statement_id),
        });
      } catch (error) {
        if (error instanceof StripeNotConfigured) throw error;
        const attempts = sync.attempts + 1;
        const delay = Math.min(FIRST_RETRY_MS * 2 ** (attempts - 1), MAX_RETRY_MS);
        const message = error instanceof Error ? error.message : String(error);
        await updateSync(db, sync.statement_id, {
          attempts,
          next_attempt_at: new Date(now.getTime() + delay),
          last_error: message.slice(0, 500),
        });
        log.warn({ err: error, statementId: sync.statement_id, attempts }, 'Stripe sync failed');
        results.push({ statementId: sync.statement_id, state: 'pending', error: message });
      }
    }
    return results;
  }

  /**
   * Verifies and applies one webhook delivery. Signatures are checked by the SDK against
   * STRIPE_WEBHOOK_SECRET with a 5-minute tolerance (older deliveries are replays); each
   * event id is applied once, and a checkout top-up credits the ledger once per session.
   */
  async function handleWebhook(rawBody: Buffer, signature: string | undefined) {
    if (config.webhookSecret === null || stripe === null) {
      throw new StripeNotConfigured(
        'Stripe webhooks are not configured: set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET',
      );
    }
    let event: Stripe.Event;
    try {
      event = stripe.webhooks.constructEvent(
        rawBody,
        signature ?? '',
        config.webhookSecret,
        WEBHOOK_TOLERANCE_SECONDS,
        undefined,
        clock().getTime(),
      );
    } catch (error) {
      throw new InvalidSignature('The Stripe-Signature header does not verify (or is too old)', {
        cause: error,
      });
    }
    return db.transaction().execute(async (trx) => {
      if (!(await insertStripeEvent(trx, event.id, event.type))) {
        return { id: event.id, type: event.type, outcome: 'duplicate' as const };
      }
      let outcome: 'applied' | 'ignored' = 'ignored';
      const object = event.data.object as unknown as Record<string, unknown>;
      if (event.type === 'invoice.paid' || event.type === 'invoice.payment_failed') {
        const state = event.type === 'invoice.paid' ? 'paid' : 'payment_failed';
        if (await updateSyncByInvoice(trx, String(object.id), state)) outcome = 'applied';
      } else if (handleEvent !== undefined) {
        outcome = await handleEvent(trx, event);
      }
      return { id: event.id, type: event.type, outcome };
    });
  }

  /**
   * What an operator needs to see of the sync, read from what the sync itself records
   * (stripe_sync, stripe_customers) for the most recent closes: counts per month, and the rows.
   */
  async function status(query: StripeSyncStatusQuery): Promise<StripeSyncStatus> {
    const one = query.month === undefined ? null : await findClose(db, query.month);
    const chosen =
      query.month === undefined
        ? await findRecentCloses(db, query.months)
        : one === null
          ? []
          : [one];
    const counts = await countSyncsByMonth(
      db,
      chosen.map((c) => c.month),
    );
    const months = chosen.map((c) => {
      const byStatus: Record<SyncStatus, number> = { pending: 0, failed: 0, synced: 0, skipped: 0 };
      const byState: Record<SyncState, number> = {
        pending: 0,
        invoiced: 0,
        finalized: 0,
        paid: 0,
        payment_failed: 0,
        skipped: 0,
      };
      for (const row of counts) {
        if (row.month !== c.month) continue;
        byStatus[row.status] += row.count;
        byState[row.state] += row.count;
      }
      return { month: c.month, closedAt: c.closedAt, statements: c.statements, byStatus, byState };
    });
    const statements = await pageSyncStatus(
      db,
      {
        months: chosen.map((c) => c.month),
        ...(query.status !== undefined ? { status: query.status } : {}),
      },
      query.after,
      query.limit,
    );
    return {
      configured: stripe !== null,
      webhooksConfigured: stripe !== null && config.webhookSecret !== null,
      finalizeInvoices: config.finalize,
      months,
      statements,
    };
  }

  return {
    run,
    syncStatement,
    handleWebhook,
    status,
    customerFor,
    client,
    configured: stripe !== null,
  };
}
