// Exports for finance and data warehouses, streamed in pages (constant memory):
//   * statement lines as CSV (RFC 4180, through csv-stringify) or JSON Lines;
//   * raw usage events of a month as JSON Lines.
// Columns are documented in docs/metering-and-billing.md (STATEMENT_COLUMNS is that list).
import { Readable } from 'node:stream';
import { stringify } from 'csv-stringify';
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import { toUsageEventView } from '../metering/index.ts';
import type { UsageReads } from '../metering/index.ts';
import { formatUsd, monthStart, addMonths } from './pricing.ts';
import { findStatementById, findStatementLines, pageMonthLines } from './queries.ts';
import type { Statement, StatementLine } from './queries.ts';

export const STATEMENT_COLUMNS = [
  'statement_id',
  'account_id',
  'month',
  'line',
  'origin_month',
  'late',
  'pipeline',
  'model_id',
  'unit',
  'events',
  'quantity',
  'fee_wei',
  'price_currency',
  'price_amount',
  'price_per_units',
  'charge_wei',
  'charge_usd',
  'eth_usd_rate',
  'rate_source',
  // The statement's settlement, the same on each of its lines (dollars, 6 decimals; empty on
  // statements closed before balances were recorded): opening + credits + debits − settled =
  // closing. `settled_usd` is what the balance paid (a prepaid month: all of it).
  'billing_mode',
  'opening_balance_usd',
  'credits_usd',
  'debits_usd',
  'settled_usd',
  'closing_balance_usd',
] as const;

export type ExportFormat = 'csv' | 'json';
const PAGE = 1_000;

type Row = Record<(typeof STATEMENT_COLUMNS)[number], string>;

function rate(s: Pick<Statement, 'rate'>): string {
  const digits = s.rate.answer.toString().padStart(s.rate.decimals + 1, '0');
  return s.rate.decimals === 0
    ? digits
    : `${digits.slice(0, -s.rate.decimals)}.${digits.slice(-s.rate.decimals)}`;
}

function toRow(s: Statement, l: StatementLine): Row {
  const usd = (v: bigint | undefined) => (v === undefined ? '' : formatUsd(v));
  return {
    statement_id: s.id,
    account_id: s.accountId,
    month: s.month,
    line: String(l.line),
    origin_month: l.originMonth,
    late: l.late ? 'true' : 'false',
    pipeline: l.pipeline,
    model_id: l.modelId,
    unit: l.unit,
    events: l.events.toString(),
    quantity: l.quantity.toString(),
    fee_wei: l.feeWei.toString(),
    price_currency: l.priceCurrency,
    price_amount: l.priceAmount.toString(),
    price_per_units: l.pricePerUnits.toString(),
    charge_wei: l.chargeWei === null ? '' : l.chargeWei.toString(),
    charge_usd: formatUsd(l.chargeUsdMicros),
    eth_usd_rate: rate(s),
    rate_source: s.rate.source,
    billing_mode: s.billingMode,
    opening_balance_usd: usd(s.balance?.openingUsdMicros),
    credits_usd: usd(s.balance?.creditsUsdMicros),
    debits_usd: usd(s.balance?.debitsUsdMicros),
    settled_usd: formatUsd(s.creditsAppliedUsdMicros),
    closing_balance_usd: usd(s.balance?.closingUsdMicros),
  };
}

function encode(rows: AsyncIterable<Row>, format: ExportFormat): Readable {
  if (format === 'json') {
    return Readable.from(
      (async function* () {
        for await (const row of rows) yield `${JSON.stringify(row)}\n`;
      })(),
    );
  }
  const csv = stringify({
    header: true,
    columns: [...STATEMENT_COLUMNS],
    record_delimiter: '\r\n',
  });
  // pipe() applies backpressure: a page is read only when the consumer has taken the last.
  Readable.from(rows).pipe(csv);
  return csv;
}

/** Every line of every statement of `month`, page by page. */
export function exportMonth(db: Kysely<Database>, month: string, format: ExportFormat): Readable {
  const rows = async function* (): AsyncGenerator<Row> {
    let after: { statementId: string; line: number } | null = null;
    const statements = new Map<string, Statement>();
    for (;;) {
      const page = await pageMonthLines(db, month, after, PAGE);
      for (const l of page) {
        let s = statements.get(l.statementId);
        if (s === undefined) {
          statements.clear(); // lines come statement by statement: keep only the current one
          s = (await findStatementById(db, l.statementId)) as Statement;
          statements.set(l.statementId, s);
        }
        yield toRow(s, l);
      }
      if (page.length < PAGE) return;
      const last = page[page.length - 1]!;
      after = { statementId: last.statementId, line: last.line };
    }
  };
  return encode(rows(), format);
}

export function exportStatement(
  db: Kysely<Database>,
  statement: Statement,
  format: ExportFormat,
): Readable {
  const rows = async function* (): AsyncGenerator<Row> {
    for (const l of await findStatementLines(db, statement.id)) yield toRow(statement, l);
  };
  return encode(rows(), format);
}

/** Raw usage events that occurred in `month`, as JSON Lines, in (occurred_at, id) order. */
export function exportUsage(usage: Pick<UsageReads, 'events'>, month: string): Readable {
  const from = monthStart(month);
  const to = monthStart(addMonths(month, 1));
  // Lines are passed on in chunks of ~64 KB: a stream chunk per event cost more than the
  // event's JSON (BENCHMARKS.md, billing).
  const lines = async function* (): AsyncGenerator<string> {
    let chunk = '';
    for await (const e of usage.events(from, to)) {
      chunk += `${JSON.stringify(toUsageEventView(e))}\n`;
      if (chunk.length >= 65_536) {
        yield chunk;
        chunk = '';
      }
    }
    if (chunk !== '') yield chunk;
  };
  return Readable.from(lines());
}
