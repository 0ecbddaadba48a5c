// `tollhouse usage …`: usage totals and retention for operators at the command line.
import { CliUsageError, parseSubcommand, printJson, shown } from '../platform/cli.ts';
import type { CliCommand, CliContext } from '../platform/cli.ts';
import type { Clock } from '../platform/clock.ts';
import { GROUP_BY } from './queries.ts';
import type { GroupBy } from './queries.ts';
import { usageSummaryView } from './routes.ts';
import type { MeteringService } from './service.ts';

export interface MeteringCliDeps {
  service: MeteringService;
  /** The app's clock: the default range is its current month. */
  clock: Clock;
}

type Context = CliContext<MeteringCliDeps>;

const USAGE = `tollhouse usage <subcommand> [options]

  show   [--account ID] [--app ID] [--from TIME] [--to TIME] [--by day,pipeline,…]
         Totals from the hourly rollups, as GET /v1/usage answers them (every account's
         unless --account); default range: the current UTC month.
         --by takes up to three of ${GROUP_BY.join(', ')}.
  prune  --before YYYY-MM
         Drops every monthly partition of raw usage events before that month (rollups stay).
`;

const OPTIONS = {
  account: { type: 'string' },
  app: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  by: { type: 'string' },
  before: { type: 'string' },
} as const;

export const meteringCommands: Record<string, CliCommand<MeteringCliDeps>> = {
  usage: {
    summary: 'Usage totals and retention (show, prune)',
    usage: USAGE,
    async run(args, context) {
      const input = parseSubcommand(args, ['show', 'prune'], OPTIONS, false);
      return input.sub === 'show'
        ? showUsage(input.values, context)
        : pruneUsage(input.values, context);
    },
  },
};

type Values = ReturnType<typeof parseSubcommand<typeof OPTIONS>>['values'];

async function showUsage(values: Values, context: Context): Promise<number> {
  if (values.before !== undefined) throw new CliUsageError('show does not take --before');
  const from = values.from === undefined ? null : parseTime('--from', values.from);
  const to = values.to === undefined ? null : parseTime('--to', values.to);
  const groupBy = (values.by ?? '').split(',').filter(Boolean);
  const unknown = groupBy.filter((g) => !(GROUP_BY as readonly string[]).includes(g));
  if (unknown.length > 0) {
    throw new CliUsageError(
      `--by: unknown ${unknown.map(shown).join(', ')}; use up to three of ${GROUP_BY.join(', ')}`,
    );
  }
  if (groupBy.length > 3) throw new CliUsageError('--by: at most three groupings');
  const { service, clock } = await context.open();
  const now = clock();
  const range = {
    from: from ?? new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)),
    to: to ?? new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)),
  };
  if (range.to.getTime() <= range.from.getTime()) {
    throw new CliUsageError(
      `--to ${range.to.toISOString()} is not after --from ${range.from.toISOString()}`,
    );
  }
  const rows = await service.summarizeAll(
    {
      ...range,
      ...(values.account ? { accountId: values.account } : {}),
      ...(values.app ? { appId: values.app } : {}),
    },
    groupBy as GroupBy[],
  );
  printJson(context.io, usageSummaryView(range, groupBy as GroupBy[], rows));
  return 0;
}

async function pruneUsage(values: Values, context: Context): Promise<number> {
  const given = Object.keys(values).filter((name) => name !== 'before');
  if (given.length > 0) throw new CliUsageError(`prune takes only --before (got --${given[0]})`);
  if (values.before === undefined) throw new CliUsageError('prune needs --before YYYY-MM');
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(values.before)) {
    throw new CliUsageError(`--before ${shown(values.before)}: not a month; expected YYYY-MM`);
  }
  const { service } = await context.open();
  const dropped = await service.prune(values.before);
  printJson(context.io, { dropped });
  return 0;
}

function parseTime(flag: string, value: string): Date {
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) {
    throw new CliUsageError(`${flag} ${shown(value)}: expected a date or RFC 3339 time`);
  }
  return time;
}
