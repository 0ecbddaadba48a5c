// `tollhouse plans …` and `tollhouse billing …`: the operator's side of billing. Results are
// JSON on stdout, except exports, which write CSV / JSON Lines to stdout or --out FILE.
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import type { UsageReads } from '../metering/index.ts';
import { AppError } from '../platform/errors.ts';
import { exportMonth, exportUsage } from './export.ts';
import { MONTH_PATTERN, parseUsd } from './pricing.ts';
import type { Price } from './pricing.ts';
import { planJson } from './routes/views.ts';
import type { BillingService } from './service.ts';
import type { StripeSync } from './stripe.ts';

export const PLANS_USAGE = `tollhouse plans <subcommand> [options]

  list
  show       <plan id>
  create     --name NAME [--id ID] [--fee USD] [--included USD] [--prepaid] [--default]
             [--price PIPELINE:MODEL:UNIT:wei|usd:AMOUNT[/PER_UNITS]]…
             AMOUNT is wei, or USD with up to 6 decimals; '*' matches anything.
  subscribe  --account acct_… --plan ID [--effective YYYY-MM]   (default: next month)
`;

export const BILLING_USAGE = `tollhouse billing <subcommand> [options]

  close         --month YYYY-MM        close a month into statements (idempotent)
  export        --month YYYY-MM --format csv|json [--out FILE]   statement lines
  export-usage  --month YYYY-MM [--out FILE]                     raw usage, JSON Lines
  stripe-sync   [--statement stmt_…]   push closed statements to Stripe
  credit        --account acct_… --usd AMOUNT --reference REF [--kind grant|top_up|adjustment]
`;

export class BillingCliError extends Error {}

export interface BillingCliDeps {
  open(): Promise<{
    service: BillingService;
    stripe: StripeSync;
    db: Kysely<Database>;
    usage: Pick<UsageReads, 'events'>;
    close(): Promise<void>;
  }>;
  out: (text: string) => void;
  /** Where exports go when there is no --out (stdout). */
  stdout: Writable;
}

const CLI_ACTOR = { actor: 'cli', requestId: null };

function month(value: string | undefined): string {
  if (value === undefined || !MONTH_PATTERN.test(value))
    throw new BillingCliError('--month YYYY-MM is required');
  return value;
}

export function parsePrice(spec: string): Price {
  const match = /^([^:]+):([^:]+):([^:]+):(wei|usd):([0-9.]+)(?:\/(\d+))?$/.exec(spec);
  if (match === null) {
    throw new BillingCliError(
      `--price ${spec}: expected PIPELINE:MODEL:UNIT:wei|usd:AMOUNT[/PER_UNITS]`,
    );
  }
  const [, pipeline, modelId, unit, currency, amount, per] = match as unknown as string[];
  const perUnits = BigInt(per ?? '1');
  if (perUnits <= 0n) throw new BillingCliError(`--price ${spec}: PER_UNITS must be positive`);
  let value: bigint;
  try {
    value = currency === 'wei' ? BigInt(/^\d+$/.test(amount!) ? amount! : 'x') : parseUsd(amount!);
  } catch {
    throw new BillingCliError(`--price ${spec}: bad amount`);
  }
  return {
    pipeline: pipeline!,
    modelId: modelId!,
    unit: unit!,
    currency: currency === 'wei' ? 'wei' : 'usd_micros',
    amount: value,
    perUnits,
  };
}

function usd(flag: string, value: string | undefined): bigint {
  if (value === undefined) return 0n;
  try {
    return parseUsd(value);
  } catch {
    throw new BillingCliError(`${flag}: expected dollars with at most 6 decimals`);
  }
}

export async function plansCommand(args: string[], deps: BillingCliDeps): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    strict: true,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      id: { type: 'string' },
      fee: { type: 'string' },
      included: { type: 'string' },
      prepaid: { type: 'boolean' },
      default: { type: 'boolean' },
      price: { type: 'string', multiple: true },
      account: { type: 'string' },
      plan: { type: 'string' },
      effective: { type: 'string' },
    },
  });
  const print = (value: unknown) => deps.out(`${JSON.stringify(value, null, 2)}\n`);
  if (!['list', 'show', 'create', 'subscribe'].includes(sub ?? '')) {
    throw new BillingCliError(`unknown plans command "${sub ?? ''}"\n\n${PLANS_USAGE}`);
  }
  // Arguments are checked before the database is opened.
  const prices = (values.price ?? []).map(parsePrice);
  const fee = usd('--fee', values.fee);
  const included = usd('--included', values.included);
  if (sub === 'create' && values.name === undefined)
    throw new BillingCliError('create needs --name');
  if (sub === 'show' && positionals[0] === undefined)
    throw new BillingCliError('show needs a plan id');
  if (sub === 'subscribe' && (values.account === undefined || values.plan === undefined)) {
    throw new BillingCliError('subscribe needs --account and --plan');
  }
  if (values.effective !== undefined && !MONTH_PATTERN.test(values.effective)) {
    throw new BillingCliError('--effective: expected YYYY-MM');
  }
  const app = await deps.open();
  try {
    if (sub === 'list') print({ plans: (await app.service.plans()).map(planJson) });
    if (sub === 'show') print(planJson(await app.service.plan(positionals[0]!)));
    if (sub === 'create') {
      const plan = await app.service.createPlan(CLI_ACTOR, {
        id: values.id,
        name: values.name!,
        monthlyFeeUsdMicros: fee,
        includedUsdMicros: included,
        prepaid: values.prepaid ?? false,
        isDefault: values.default ?? false,
        prices,
      });
      print(planJson(plan));
    }
    if (sub === 'subscribe') {
      const s = await app.service.subscribe(
        CLI_ACTOR,
        values.account!,
        values.plan!,
        values.effective,
      );
      print({
        account_id: s.accountId,
        current_plan: s.currentPlan?.id ?? null,
        history: s.history.map((h) => ({ plan_id: h.planId, effective_month: h.effectiveMonth })),
      });
    }
    return 0;
  } catch (error) {
    // Refusals (unknown account, month not over, no rate) are one line, not a stack trace.
    if (error instanceof AppError && error.expose) throw new BillingCliError(error.message);
    throw error;
  } finally {
    await app.close();
  }
}

export async function billingCommand(args: string[], deps: BillingCliDeps): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parseArgs({
    args: rest,
    strict: true,
    options: {
      month: { type: 'string' },
      format: { type: 'string' },
      out: { type: 'string' },
      statement: { type: 'string' },
      account: { type: 'string' },
      usd: { type: 'string' },
      reference: { type: 'string' },
      kind: { type: 'string' },
    },
  });
  const print = (value: unknown) => deps.out(`${JSON.stringify(value, null, 2)}\n`);
  if (!['close', 'export', 'export-usage', 'stripe-sync', 'credit'].includes(sub ?? '')) {
    throw new BillingCliError(`unknown billing command "${sub ?? ''}"\n\n${BILLING_USAGE}`);
  }
  const m =
    sub === 'close' || sub === 'export' || sub === 'export-usage' ? month(values.month) : '';
  const format = values.format ?? 'csv';
  if (sub === 'export' && format !== 'csv' && format !== 'json') {
    throw new BillingCliError('--format: expected csv or json');
  }
  let credit: bigint | null = null;
  const kind = values.kind ?? 'grant';
  if (sub === 'credit') {
    if (
      values.account === undefined ||
      values.reference === undefined ||
      values.usd === undefined
    ) {
      throw new BillingCliError('credit needs --account, --usd and --reference');
    }
    const negative = values.usd.startsWith('-');
    credit = usd('--usd', negative ? values.usd.slice(1) : values.usd) * (negative ? -1n : 1n);
    if (!['grant', 'top_up', 'adjustment'].includes(kind)) {
      throw new BillingCliError('--kind: expected grant, top_up or adjustment');
    }
  }
  const app = await deps.open();
  try {
    if (sub === 'close') {
      const result = await app.service.closeMonth(m);
      print({ ...result, cutoff: result.cutoff.toISOString() });
    } else if (sub === 'export' || sub === 'export-usage') {
      const source =
        sub === 'export'
          ? exportMonth(app.db, m, format as 'csv' | 'json')
          : exportUsage(app.usage, m);
      const target = values.out === undefined ? deps.stdout : createWriteStream(values.out);
      await pipeline(source, target, { end: values.out !== undefined });
    } else if (sub === 'stripe-sync') {
      if (!app.stripe.configured)
        throw new BillingCliError('Stripe is not configured: set STRIPE_SECRET_KEY');
      const results = await app.stripe.run(
        values.statement ? { statementId: values.statement } : {},
      );
      print({ results });
      return results.some((r) => r.error !== undefined) ? 1 : 0;
    } else if (sub === 'credit') {
      const recorded = await app.service.addLedgerEntry(CLI_ACTOR, {
        accountId: values.account!,
        kind: kind as 'grant',
        amountUsdMicros: credit!,
        reference: `cli:${values.reference!}`,
      });
      const b = await app.service.balance(values.account!);
      print({
        recorded,
        account_id: b.accountId,
        balance_usd_micros: b.balanceUsdMicros.toString(),
      });
    }
    return 0;
  } catch (error) {
    // Refusals (unknown account, month not over, no rate) are one line, not a stack trace.
    if (error instanceof AppError && error.expose) throw new BillingCliError(error.message);
    throw error;
  } finally {
    await app.close();
  }
}
