// `tollhouse plans …` and `tollhouse billing …`: the operator's side of billing. Results are
// JSON on stdout, except exports, which write CSV / JSON Lines to stdout or --out FILE.
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import { CliFailure, CliUsageError, parseSubcommand, printJson, shown } from '../platform/cli.ts';
import type { CliCommand, CliContext } from '../platform/cli.ts';
import type { UsageReads } from '../metering/index.ts';
import { exportMonth, exportUsage } from './export.ts';
import { MONTH_PATTERN, parseUsd } from './pricing.ts';
import type { Price } from './pricing.ts';
import { planJson } from './routes/views.ts';
import { planLimitsSchema } from '../platform/limits.ts';
import type { PlanLimits } from '../platform/limits.ts';
import type { BillingService } from './service.ts';
import type { StripeSync } from './stripe.ts';
import type { Prepaid } from './prepaid.ts';
import { rechargeJson, settingsJson } from './routes/prepaid.ts';

const PLANS_USAGE = `tollhouse plans <subcommand> [options]

  list
  show       <plan id>
  create     --name NAME [--id ID] [--fee USD] [--included USD] [--prepaid] [--default]
             [--price PIPELINE:MODEL:UNIT:wei|usd:AMOUNT[/PER_UNITS]]…
             AMOUNT is wei, or USD with up to 6 decimals; '*' matches anything.
  subscribe  --account acct_… --plan ID [--effective YYYY-MM]   (default: next month)
  limits     <plan id> --limits '{"key":{"rate":N,"burst":N,"concurrency":N},"account":{…},"anonymous":{…}}'
             replaces the plan's front-door limits (null or absent: the settings apply)
`;

const BILLING_USAGE = `tollhouse billing <subcommand> [options]

  close         --month YYYY-MM        close a month into statements (idempotent)
  export        --month YYYY-MM --format csv|json [--out FILE]   statement lines
  export-usage  --month YYYY-MM [--out FILE]                     raw usage, JSON Lines
  stripe-sync   [--statement stmt_…]   push closed statements to Stripe
  credit        --account acct_… --usd AMOUNT --reference REF [--kind grant|top_up|adjustment]
  prepaid show           <account>                        balance, mode, auto-recharge, recharges
  prepaid set-mode       <account> prepaid|postpaid
  prepaid auto-recharge  <account> --threshold USD --amount USD --monthly-max USD
  prepaid auto-recharge  <account> --off
`;

export interface BillingCliDeps {
  service: BillingService;
  stripe: StripeSync;
  /** For the exports, which stream straight from the database. */
  db: Kysely<Database>;
  /** Raw usage events for export-usage (metering's read API). */
  usage: Pick<UsageReads, 'events'>;
  /** Prepaid credit: `billing prepaid …`. */
  prepaid: Pick<Prepaid, 'overview' | 'setMode' | 'setAutoRecharge'>;
}

type Context = CliContext<BillingCliDeps>;

export const billingCommands: Record<string, CliCommand<BillingCliDeps>> = {
  plans: {
    summary: 'Billing plans and subscriptions: list, show, create, subscribe',
    usage: PLANS_USAGE,
    run: plansCommand,
  },
  billing: {
    summary: 'Month close, exports, Stripe sync, credits',
    usage: BILLING_USAGE,
    run: billingCommand,
  },
};

const CLI_ACTOR = { actor: 'cli', requestId: null };

function month(sub: string, value: string | undefined): string {
  if (value === undefined) throw new CliUsageError(`${sub} needs --month YYYY-MM`);
  if (!MONTH_PATTERN.test(value)) {
    throw new CliUsageError(`--month ${shown(value)}: not a month; expected YYYY-MM (01 to 12)`);
  }
  return value;
}

export function parsePrice(spec: string): Price {
  const match = /^([^:]+):([^:]+):([^:]+):(wei|usd):([0-9.]+)(?:\/(\d+))?$/.exec(spec);
  if (match === null) {
    throw new CliUsageError(
      `--price ${spec}: expected PIPELINE:MODEL:UNIT:wei|usd:AMOUNT[/PER_UNITS]`,
    );
  }
  const [, pipeline, modelId, unit, currency, amount, per] = match as unknown as string[];
  const perUnits = BigInt(per ?? '1');
  if (perUnits <= 0n) throw new CliUsageError(`--price ${spec}: PER_UNITS must be positive`);
  let value: bigint;
  try {
    value = currency === 'wei' ? BigInt(/^\d+$/.test(amount!) ? amount! : 'x') : parseUsd(amount!);
  } catch {
    throw new CliUsageError(`--price ${spec}: bad amount`);
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
    throw new CliUsageError(`${flag}: expected dollars with at most 6 decimals`);
  }
}

const PLAN_OPTIONS = {
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
  limits: { type: 'string' },
} as const;

function planLimitsOption(raw: string | undefined): PlanLimits {
  if (raw === undefined) throw new CliUsageError('limits needs --limits JSON');
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new CliUsageError('--limits: not JSON');
  }
  const parsed = planLimitsSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CliUsageError(`--limits: ${issue.path.join('.') || '(top)'}: ${issue.message}`);
  }
  return parsed.data;
}

async function plansCommand(args: string[], context: Context): Promise<number> {
  const { sub, values, positionals } = parseSubcommand(
    args,
    ['list', 'show', 'create', 'subscribe', 'limits'],
    PLAN_OPTIONS,
  );
  // Arguments are checked before the database is opened.
  const prices = (values.price ?? []).map(parsePrice);
  const fee = usd('--fee', values.fee);
  const included = usd('--included', values.included);
  const limits = sub === 'limits' ? planLimitsOption(values.limits) : null;
  if (sub === 'show' || sub === 'limits') {
    if (positionals.length !== 1) throw new CliUsageError(`${sub} needs one plan id`);
  } else if (positionals.length > 0) {
    throw new CliUsageError(
      `${sub} takes no arguments besides options (got ${shown(positionals[0]!)})`,
    );
  }
  if (sub === 'create' && values.name === undefined) throw new CliUsageError('create needs --name');
  if (sub === 'subscribe' && values.account === undefined) {
    throw new CliUsageError('subscribe needs --account acct_…');
  }
  if (sub === 'subscribe' && values.plan === undefined) {
    throw new CliUsageError('subscribe needs --plan ID');
  }
  if (values.effective !== undefined && !MONTH_PATTERN.test(values.effective)) {
    throw new CliUsageError(
      `--effective ${shown(values.effective)}: not a month; expected YYYY-MM (01 to 12)`,
    );
  }
  const { service } = await context.open();
  if (sub === 'list') printJson(context.io, { plans: (await service.plans()).map(planJson) });
  if (sub === 'show') printJson(context.io, planJson(await service.plan(positionals[0]!)));
  if (sub === 'create') {
    const plan = await service.createPlan(CLI_ACTOR, {
      id: values.id,
      name: values.name!,
      monthlyFeeUsdMicros: fee,
      includedUsdMicros: included,
      prepaid: values.prepaid ?? false,
      isDefault: values.default ?? false,
      prices,
    });
    printJson(context.io, planJson(plan));
  }
  if (sub === 'limits') {
    printJson(
      context.io,
      planJson(await service.setPlanLimits(CLI_ACTOR, positionals[0]!, limits!)),
    );
  }
  if (sub === 'subscribe') {
    const s = await service.subscribe(CLI_ACTOR, values.account!, values.plan!, values.effective);
    printJson(context.io, {
      account_id: s.accountId,
      current_plan: s.currentPlan?.id ?? null,
      history: s.history.map((h) => ({ plan_id: h.planId, effective_month: h.effectiveMonth })),
    });
  }
  return 0;
}

const BILLING_OPTIONS = {
  month: { type: 'string' },
  format: { type: 'string' },
  out: { type: 'string' },
  statement: { type: 'string' },
  account: { type: 'string' },
  usd: { type: 'string' },
  reference: { type: 'string' },
  kind: { type: 'string' },
} as const;

async function billingCommand(args: string[], context: Context): Promise<number> {
  if (args[0] === 'prepaid') return prepaidCommand(args.slice(1), context);
  const { sub, values } = parseSubcommand(
    args,
    ['close', 'export', 'export-usage', 'stripe-sync', 'credit', 'prepaid'],
    BILLING_OPTIONS,
    false,
  );
  const m =
    sub === 'close' || sub === 'export' || sub === 'export-usage' ? month(sub, values.month) : '';
  const format = values.format ?? 'csv';
  if (sub === 'export' && format !== 'csv' && format !== 'json') {
    throw new CliUsageError(`--format ${shown(format)}: expected csv or json`);
  }
  let credit: bigint | null = null;
  const kind = values.kind ?? 'grant';
  if (sub === 'credit') {
    for (const [flag, value] of [
      ['--account', values.account],
      ['--usd', values.usd],
      ['--reference', values.reference],
    ] as const) {
      if (value === undefined) throw new CliUsageError(`credit needs ${flag}`);
    }
    const amount = values.usd!;
    const negative = amount.startsWith('-');
    credit = usd('--usd', negative ? amount.slice(1) : amount) * (negative ? -1n : 1n);
    if (!['grant', 'top_up', 'adjustment'].includes(kind)) {
      throw new CliUsageError(`--kind ${shown(kind)}: expected grant, top_up or adjustment`);
    }
  }
  const app = await context.open();
  if (sub === 'close') {
    const result = await app.service.closeMonth(m);
    printJson(context.io, { ...result, cutoff: result.cutoff.toISOString() });
  } else if (sub === 'export' || sub === 'export-usage') {
    const source =
      sub === 'export'
        ? exportMonth(app.db, m, format as 'csv' | 'json')
        : exportUsage(app.usage, m);
    const target = values.out === undefined ? context.io.stdout : createWriteStream(values.out);
    await pipeline(source, target, { end: values.out !== undefined });
  } else if (sub === 'stripe-sync') {
    if (!app.stripe.configured) {
      throw new CliFailure('Stripe is not configured: set STRIPE_SECRET_KEY');
    }
    const results = await app.stripe.run(values.statement ? { statementId: values.statement } : {});
    printJson(context.io, {
      results: results.map((r) => ({
        statement_id: r.statementId,
        state: r.state,
        ...(r.error === undefined ? {} : { error: r.error }),
      })),
    });
    return results.some((r) => r.error !== undefined) ? 1 : 0;
  } else if (sub === 'credit') {
    const recorded = await app.service.addLedgerEntry(CLI_ACTOR, {
      accountId: values.account!,
      kind: kind as 'grant',
      amountUsdMicros: credit!,
      reference: `cli:${values.reference!}`,
    });
    const b = await app.service.balance(values.account!);
    printJson(context.io, {
      recorded,
      account_id: b.accountId,
      balance_usd_micros: b.balanceUsdMicros.toString(),
    });
  }
  return 0;
}

const PREPAID_OPTIONS = {
  threshold: { type: 'string' },
  amount: { type: 'string' },
  'monthly-max': { type: 'string' },
  off: { type: 'boolean' },
} as const;

const ACCOUNT_ID = /^acct_[0-9A-Za-z]{1,64}$/;

/** `billing prepaid show|set-mode|auto-recharge <account> …`, audited as the actor `cli`. */
async function prepaidCommand(args: string[], context: Context): Promise<number> {
  const { sub, values, positionals } = parseSubcommand(
    args,
    ['show', 'set-mode', 'auto-recharge'],
    PREPAID_OPTIONS,
  );
  const [account, mode, ...extra] = positionals;
  if (account === undefined) throw new CliUsageError(`prepaid ${sub} needs an account (acct_…)`);
  if (!ACCOUNT_ID.test(account)) {
    throw new CliUsageError(`${shown(account)}: not an account id (acct_…)`);
  }
  const wanted = sub === 'set-mode' ? 1 : 0;
  if (positionals.length - 1 !== wanted || extra.length > 0) {
    throw new CliUsageError(
      sub === 'set-mode'
        ? 'prepaid set-mode needs an account and prepaid or postpaid'
        : `prepaid ${sub} takes one account (got ${positionals.length} arguments)`,
    );
  }
  if (sub === 'set-mode' && mode !== 'prepaid' && mode !== 'postpaid') {
    throw new CliUsageError(`${shown(mode ?? '')}: expected prepaid or postpaid`);
  }
  const optionGiven =
    values.threshold !== undefined ||
    values.amount !== undefined ||
    values['monthly-max'] !== undefined;
  if (sub !== 'auto-recharge' && (optionGiven || values.off !== undefined)) {
    throw new CliUsageError(`prepaid ${sub} takes no options`);
  }
  let settings: { threshold: bigint; amount: bigint; monthlyMax: bigint } | null = null;
  if (sub === 'auto-recharge') {
    if (values.off === true && optionGiven) {
      throw new CliUsageError('--off takes no --threshold, --amount or --monthly-max');
    }
    if (values.off !== true) {
      for (const flag of ['threshold', 'amount', 'monthly-max'] as const) {
        if (values[flag] === undefined) {
          throw new CliUsageError(`auto-recharge needs --${flag} USD (or --off)`);
        }
      }
      settings = {
        threshold: usd('--threshold', values.threshold),
        amount: usd('--amount', values.amount),
        monthlyMax: usd('--monthly-max', values['monthly-max']),
      };
    }
  }
  const { prepaid } = await context.open();
  if (sub === 'set-mode') {
    printJson(
      context.io,
      settingsJson(await prepaid.setMode(CLI_ACTOR, account, mode as 'prepaid')),
    );
    return 0;
  }
  if (sub === 'auto-recharge') {
    const current = (await prepaid.overview(account)).settings;
    const saved = await prepaid.setAutoRecharge(
      CLI_ACTOR,
      account,
      settings === null
        ? {
            enabled: false,
            threshold: current.thresholdUsdMicros,
            amount: current.amountUsdMicros,
            monthlyMax: current.monthlyMaxUsdMicros,
          }
        : { enabled: true, ...settings },
    );
    printJson(context.io, settingsJson(saved));
    return 0;
  }
  const o = await prepaid.overview(account);
  printJson(context.io, {
    ...settingsJson(o.settings),
    balance_usd_micros: o.balanceUsdMicros.toString(),
    month_usage_wei: o.monthUsageWei.toString(),
    month_usage_usd_micros: o.monthUsageUsdMicros?.toString() ?? null,
    spendable_usd_micros: o.spendableUsdMicros?.toString() ?? null,
    recharges: o.recharges.map(rechargeJson),
  });
  return 0;
}
