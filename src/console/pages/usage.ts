// Usage explorer: filters (range, app, pipeline, model, end user), a grouping, a chart (when
// grouped by day), the table, and the same rows as CSV. One /v1/usage read per view.
import { stringify } from 'csv-stringify/sync';
import { dayRange, stackedBarChart } from '../chart.ts';
import { apiMessage } from '../framework.ts';
import type { PageContext, createFramework } from '../framework.ts';
import { html } from '../../platform/html.ts';
import { eth, notice, table } from '../views.ts';

const GROUPS = ['pipeline', 'model', 'app', 'end_user'] as const;
const GROUP_LABELS: Record<(typeof GROUPS)[number], string> = {
  pipeline: 'Pipeline',
  model: 'Model',
  app: 'App',
  end_user: 'End user',
};
// The API allows 400 days; the chart stays readable up to about three months of daily bars.
const CHART_MAX_DAYS = 93;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

interface Filters {
  from: string;
  to: string;
  group: (typeof GROUPS)[number];
  app: string;
  pipeline: string;
  model: string;
  endUser: string;
}

interface Row {
  day?: string | null;
  account?: string | null;
  app?: string | null;
  end_user?: string | null;
  pipeline?: string | null;
  model?: string | null;
  unit: string;
  events: number;
  failed_events: number;
  quantity: string;
  fee_wei: string;
}

function filtersOf(query: Record<string, unknown>, now: Date): Filters {
  const text = (name: string) => {
    const v = query[name];
    return typeof v === 'string' ? v.trim().slice(0, 200) : '';
  };
  const today = now.toISOString().slice(0, 10);
  const monthAgo = new Date(now.getTime() - 29 * 86_400_000).toISOString().slice(0, 10);
  const group = text('group') as Filters['group'];
  return {
    from: DATE.test(text('from')) ? text('from') : monthAgo,
    to: DATE.test(text('to')) ? text('to') : today,
    group: GROUPS.includes(group) ? group : 'pipeline',
    app: text('app'),
    pipeline: text('pipeline'),
    model: text('model'),
    endUser: text('end_user'),
  };
}

/** /v1/usage query for the filters; `to` is inclusive in the form, exclusive in the API. */
function apiQuery(f: Filters, groupBy: string[], extra: Record<string, string> = {}) {
  const params = new URLSearchParams({
    from: `${f.from}T00:00:00Z`,
    to: new Date(Date.parse(`${f.to}T00:00:00Z`) + 86_400_000).toISOString(),
    group_by: groupBy.join(','),
    ...extra,
  });
  if (f.app !== '') params.set('app_id', f.app);
  if (f.pipeline !== '') params.set('pipeline', f.pipeline);
  if (f.model !== '') params.set('model_id', f.model);
  if (f.endUser !== '') params.set('end_user_id', f.endUser);
  return `/v1/usage?${params.toString()}`;
}

export async function usageView(
  pc: PageContext,
  options: { action: string; title: string; active: string; csv: string; byAccount: boolean },
) {
  const f = filtersOf(pc.ctx.query, pc.clock());
  const groupBy = options.byAccount ? ['account', f.group] : [f.group];
  // The customer view is one's own account (an operator's token would otherwise see all).
  const own: Record<string, string> = options.byAccount ? {} : { account_id: pc.session.accountId };
  const [daily, totals] = await Promise.all([
    pc.api('GET', apiQuery(f, ['day', f.group], own)),
    pc.api('GET', apiQuery(f, groupBy, own)),
  ]);
  const error =
    daily.status !== 200 ? apiMessage(daily) : totals.status !== 200 ? apiMessage(totals) : null;
  const dailyRows = (daily.status === 200 ? daily.body.rows : []) as Row[];
  const rows = (totals.status === 200 ? totals.body.rows : []) as Row[];
  const span = Math.round((Date.parse(f.to) - Date.parse(f.from)) / 86_400_000) + 1;
  const days =
    span > 0 && span <= CHART_MAX_DAYS ? dayRange(new Date(`${f.from}T00:00:00Z`), span) : [];
  const names = [...new Set(dailyRows.map((r) => label(r[f.group])))];
  const chart =
    days.length === 0 || dailyRows.length === 0
      ? html``
      : stackedBarChart({
          id: 'usage-chart',
          title: `Requests per day by ${f.group.replace('_', ' ')}`,
          days,
          series: names.map((name) => ({
            name,
            values: days.map((d) =>
              dailyRows
                .filter((r) => r.day === d && label(r[f.group]) === name)
                .reduce((s, r) => s + r.events, 0),
            ),
          })),
          format: (v) => v.toLocaleString('en-US'),
        });
  const totalEvents = rows.reduce((s, r) => s + r.events, 0);
  const totalFee = rows.reduce((s, r) => s + BigInt(r.fee_wei), 0n);
  const query = new URLSearchParams(pc.ctx.querystring).toString();
  const body = html`<form method="get" action="${options.action}" class="card">
      <div class="row">
        <div>
          <label for="f-from">From</label
          ><input id="f-from" name="from" type="date" value="${f.from}" />
        </div>
        <div>
          <label for="f-to">To (inclusive)</label
          ><input id="f-to" name="to" type="date" value="${f.to}" />
        </div>
        <div>
          <label for="f-group">Group by</label
          ><select id="f-group" name="group">
            ${GROUPS.map((g) => html`<option value="${g}" ${g === f.group ? html` selected` : ''}>${g.replace('_', ' ')}</option>`)}
          </select>
        </div>
      </div>
      <div class="row">
        <div>
          <label for="f-app">App id</label
          ><input id="f-app" name="app" type="text" value="${f.app}" />
        </div>
        <div>
          <label for="f-pipeline">Pipeline</label
          ><input id="f-pipeline" name="pipeline" type="text" value="${f.pipeline}" />
        </div>
        <div>
          <label for="f-model">Model</label
          ><input id="f-model" name="model" type="text" value="${f.model}" />
        </div>
        <div>
          <label for="f-user">End user</label
          ><input id="f-user" name="end_user" type="text" value="${f.endUser}" />
        </div>
      </div>
      <button type="submit">Show usage</button>
      <a class="button secondary" href="${options.csv}${query === '' ? '' : `?${query}`}" download
        >Download CSV</a
      >
    </form>
    ${notice('error', error)}
    <p id="usage-totals">
      <strong>${totalEvents.toLocaleString('en-US')}</strong> requests,
      <strong>${eth(totalFee)}</strong> in network fees.
    </p>
    ${chart}
    ${table(
      'Usage',
      [
        ...(options.byAccount ? ['Account'] : []),
        GROUP_LABELS[f.group],
        'Unit',
        'Requests',
        'Failed',
        'Quantity',
        'Network fees',
      ],
      rows.map((r) => [
        ...(options.byAccount ? [label(r.account)] : []),
        label(r[f.group]),
        r.unit,
        r.events.toLocaleString('en-US'),
        r.failed_events.toLocaleString('en-US'),
        r.quantity,
        eth(r.fee_wei),
      ]),
      'No usage matches these filters.',
    )}`;
  return { title: options.title, active: options.active, body, status: error === null ? 200 : 400 };
}

export async function usageCsv(pc: PageContext, byAccount: boolean, filename: string) {
  const f = filtersOf(pc.ctx.query, pc.clock());
  const groupBy = byAccount ? ['day', 'account', f.group] : ['day', f.group];
  const own: Record<string, string> = byAccount ? {} : { account_id: pc.session.accountId };
  const response = await pc.api('GET', apiQuery(f, groupBy, own));
  if (response.status !== 200) {
    return {
      title: 'Usage',
      active: byAccount ? 'all-usage' : 'usage',
      status: 400,
      body: notice('error', apiMessage(response)),
    };
  }
  const rows = response.body.rows as Row[];
  pc.ctx.type = 'text/csv; charset=utf-8; header=present';
  pc.ctx.set('Content-Disposition', `attachment; filename="${filename}-${f.from}-${f.to}.csv"`);
  pc.ctx.body = stringify(
    rows.map((r) => ({
      day: r.day ?? '',
      ...(byAccount ? { account: r.account ?? '' } : {}),
      [f.group]: r[f.group] ?? '',
      unit: r.unit,
      events: r.events,
      failed_events: r.failed_events,
      quantity: r.quantity,
      fee_wei: r.fee_wei,
    })),
    // A spreadsheet would run a cell starting with = + - @ as a formula (CSV injection).
    { header: true, cast: { string: (v) => (/^[=+\-@\t\r]/.test(v) ? `'${v}` : v) } },
  );
  return null;
}

function label(value: string | null | undefined): string {
  return value ?? '(none)';
}

export function usagePages(framework: ReturnType<typeof createFramework>): void {
  framework.page('/console/usage', (pc) =>
    usageView(pc, {
      action: '/console/usage',
      title: 'Usage',
      active: 'usage',
      csv: '/console/usage.csv',
      byAccount: false,
    }),
  );
  framework.page('/console/usage.csv', (pc) => usageCsv(pc, false, 'usage'));
}
