// Overview: the last 30 days of usage by pipeline, this month's spend against the account's
// cap, and the prepaid balance with the billing mode. Four /v1 reads, made in parallel.
import { dayRange, stackedBarChart } from '../chart.ts';
import { ok } from '../framework.ts';
import type { createFramework } from '../framework.ts';
import { html } from '../../platform/html.ts';
import type { Html } from '../../platform/html.ts';
import { eth, usd } from '../views.ts';

const DAYS = 30;

interface UsageRow {
  day?: string | null;
  pipeline?: string | null;
  events: number;
  fee_wei: string;
}

export function overviewPage(framework: ReturnType<typeof createFramework>): void {
  framework.page('/console', async (pc) => {
    const now = pc.clock();
    const days = dayRange(new Date(now.getTime() - (DAYS - 1) * 86_400_000), DAYS);
    const from = `${days[0]}T00:00:00Z`;
    const to = new Date(Date.parse(`${days[DAYS - 1]}T00:00:00Z`) + 86_400_000).toISOString();
    const account = encodeURIComponent(pc.session.accountId);
    const [recent, month, caps, balance] = await Promise.all([
      // account_id: an operator's token sees every account; this page is about one's own.
      pc.api('GET', `/v1/usage?from=${from}&to=${to}&group_by=day,pipeline&account_id=${account}`),
      pc.api('GET', `/v1/usage?account_id=${account}`),
      pc.api('GET', `/v1/accounts/${account}/spend-caps`),
      pc.api('GET', `/v1/accounts/${account}/prepaid`),
    ]);
    const rows = ok(recent).body.rows as UsageRow[];
    const pipelines = [...new Set(rows.map((r) => r.pipeline ?? 'unknown'))];
    const series = pipelines.map((name) => ({
      name,
      values: days.map((day) =>
        rows
          .filter((r) => r.day === day && (r.pipeline ?? 'unknown') === name)
          .reduce((s, r) => s + r.events, 0),
      ),
    }));
    const totalEvents = rows.reduce((s, r) => s + r.events, 0);
    const spentWei = BigInt(ok(month).body.totals.fee_wei as string);
    const accountCap = (
      ok(caps).body.caps as Array<{
        app_id: string | null;
        end_user_id: string | null;
        monthly_cap_wei: string;
      }>
    ).find((c) => c.app_id === null && c.end_user_id === null);
    const prepaid = ok(balance).body as {
      mode: 'postpaid' | 'prepaid';
      balance_usd_micros: string;
      spendable_usd_micros: string | null;
      auto_recharge: { enabled: boolean };
    };
    const body = html`<div class="cards">
        <section class="card" aria-labelledby="ov-events">
          <h2 id="ov-events">Requests, last ${DAYS} days</h2>
          <p class="figure" id="total-events">${totalEvents.toLocaleString('en-US')}</p>
        </section>
        <section class="card" aria-labelledby="ov-spend">
          <h2 id="ov-spend">Spend this month</h2>
          <p class="figure" id="month-spend">${eth(spentWei)}</p>
          ${capLine(spentWei, accountCap === undefined ? null : BigInt(accountCap.monthly_cap_wei))}
        </section>
        <section class="card" aria-labelledby="ov-balance">
          <h2 id="ov-balance">Balance</h2>
          <p class="figure" id="balance">${usd(prepaid.balance_usd_micros)}</p>
          <p class="muted" id="balance-state">
            ${
              prepaid.mode === 'prepaid'
                ? html`Prepaid:
                  ${
                    prepaid.spendable_usd_micros === null
                      ? 'left to spend unknown (no rate)'
                      : `${usd(prepaid.spendable_usd_micros)} left to spend this month`
                  };
                  auto-recharge ${prepaid.auto_recharge.enabled ? 'on' : 'off'}.`
                : 'Postpaid: usage is invoiced monthly, credit is used first.'
            }
          </p>
          <p><a href="/console/balance">Balance and history</a></p>
        </section>
      </div>
      <section class="card" aria-labelledby="ov-chart">
        <h2 id="ov-chart">Usage by pipeline</h2>
        ${
          totalEvents === 0
            ? html`<p class="muted">No usage in the last ${DAYS} days.</p>`
            : stackedBarChart({
                id: 'usage-chart',
                title: `Requests per day by pipeline, last ${DAYS} days`,
                days,
                series,
                format: (v) => `${v.toLocaleString('en-US')}`,
              })
        }
        <p><a href="/console/usage">Explore usage</a></p>
      </section>`;
    return { title: 'Overview', active: 'overview', body };
  });
}

function capLine(spent: bigint, cap: bigint | null): Html {
  if (cap === null) return html`<p class="muted">No monthly spending cap.</p>`;
  // Per-mille in bigint so huge wei amounts keep their precision; the meter needs a number.
  const permille = cap === 0n ? 1000 : Number((spent * 1000n) / cap);
  const shown = Math.min(1000, permille);
  return html`<p>of a ${eth(cap)} cap (${(permille / 10).toFixed(1)}%)</p>
    <meter
      class="meter"
      min="0"
      max="1000"
      low="800"
      high="950"
      optimum="0"
      value="${shown}"
      aria-label="Spend against the monthly cap"
    >
      ${(permille / 10).toFixed(1)}%
    </meter>`;
}
