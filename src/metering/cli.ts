// `tollhouse usage …`: usage totals and retention for operators at the command line.
import { parseArgs } from 'node:util';
import { GROUP_BY } from './queries.ts';
import type { GroupBy } from './queries.ts';
import type { MeteringService } from './service.ts';

export const USAGE_HELP = `Usage:
  tollhouse usage show [--account ID] [--app ID] [--from TIME] [--to TIME] [--by day,pipeline,…]
      Totals (JSON) from the hourly rollups; default range: the current UTC month.
      --by takes up to three of ${GROUP_BY.join(', ')}.
  tollhouse usage prune --before YYYY-MM
      Drops every monthly partition of raw usage events before that month (rollups stay).
`;

export class CliUsageError extends Error {}

export async function usageCommand(
  args: string[],
  deps: {
    open: () => Promise<{ metering: MeteringService; close(): Promise<void> }>;
    out: (text: string) => void;
  },
): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'show') {
    const { values } = parseArgs({
      args: rest,
      strict: true,
      options: {
        account: { type: 'string' },
        app: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        by: { type: 'string' },
      },
    });
    const now = new Date();
    const from = values.from
      ? parseTime('--from', values.from)
      : new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
    const to = values.to
      ? parseTime('--to', values.to)
      : new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
    const groupBy = (values.by ?? '').split(',').filter(Boolean);
    const unknown = groupBy.filter((g) => !(GROUP_BY as readonly string[]).includes(g));
    if (unknown.length > 0)
      throw new CliUsageError(`--by: unknown ${unknown.join(', ')}; use ${GROUP_BY.join(', ')}`);
    const opened = await deps.open();
    try {
      const rows = await opened.metering.summarizeAll(
        {
          from,
          to,
          ...(values.account ? { accountId: values.account } : {}),
          ...(values.app ? { appId: values.app } : {}),
        },
        groupBy as GroupBy[],
      );
      deps.out(
        JSON.stringify(
          {
            from: from.toISOString(),
            to: to.toISOString(),
            rows: rows.map((r) => ({
              ...r.dimensions,
              unit: r.unit,
              events: r.events.toString(),
              failed_events: r.failedEvents.toString(),
              quantity: r.quantity.toString(),
              fee_wei: r.feeWei.toString(),
            })),
          },
          null,
          2,
        ),
      );
      return 0;
    } finally {
      await opened.close();
    }
  }
  if (sub === 'prune') {
    const { values } = parseArgs({
      args: rest,
      strict: true,
      options: { before: { type: 'string' } },
    });
    if (values.before === undefined || !/^\d{4}-(0[1-9]|1[0-2])$/.test(values.before)) {
      throw new CliUsageError('--before YYYY-MM is required');
    }
    const opened = await deps.open();
    try {
      const dropped = await opened.metering.prune(values.before);
      deps.out(JSON.stringify({ dropped }, null, 2));
      return 0;
    } finally {
      await opened.close();
    }
  }
  throw new CliUsageError(
    `unknown usage command ${sub === undefined ? '' : `"${sub}"`}\n\n${USAGE_HELP}`,
  );
}

function parseTime(flag: string, value: string): Date {
  const time = new Date(value);
  if (Number.isNaN(time.getTime()))
    throw new CliUsageError(`${flag}: expected a date or RFC 3339 time`);
  return time;
}
