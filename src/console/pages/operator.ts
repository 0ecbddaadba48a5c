// Operator pages: plans and prices, every account's usage, month close, the payment signer and
// health. Read-only views of /v1 (and /readyz), shown only to sessions with the admin scope.
import type { ApiClient } from '../api.ts';
import { ok } from '../framework.ts';
import type { createFramework } from '../framework.ts';
import { html } from '../html.ts';
import type { Html } from '../html.ts';
import { eth, gap, notice, table, usd, when } from '../views.ts';
import { usageCsv, usageView } from './usage.ts';

interface Plan {
  id: string;
  name: string;
  monthly_fee_usd_micros: string;
  included_usd_micros: string;
  prepaid: boolean;
  default: boolean;
  prices: Array<{
    pipeline: string;
    model_id: string;
    unit: string;
    currency: 'wei' | 'usd_micros';
    amount: string;
    per_units: string;
  }>;
}

export function operatorPages(framework: ReturnType<typeof createFramework>, api: ApiClient) {
  const admin = { admin: true };

  framework.page(
    '/console/admin/plans',
    async (pc) => {
      const plans = (ok(await pc.api('GET', '/v1/plans')).body as { plans: Plan[] }).plans;
      const body =
        plans.length === 0
          ? html`<p class="muted">
              No plans. Create them with POST /v1/plans or <code>tollhouse billing</code>.
            </p>`
          : html`${plans.map(
              (p) =>
                html`<section class="card" aria-labelledby="plan-${p.id}">
                  <h2 id="plan-${p.id}">
                    ${p.name}
                    <span class="muted">(${p.id})</span
                    >${p.default ? html` <span class="badge good">default</span>` : ''}${p.prepaid ? html` <span class="badge">prepaid</span>` : ''}
                  </h2>
                  <p>
                    Monthly fee ${usd(p.monthly_fee_usd_micros)}, includes
                    ${usd(p.included_usd_micros)} of usage.
                  </p>
                  ${table(
                    `Prices of ${p.name}`,
                    ['Pipeline', 'Model', 'Unit', 'Price'],
                    p.prices.map((r) => [
                      r.pipeline,
                      r.model_id,
                      r.unit,
                      `${r.currency === 'wei' ? eth(r.amount) : usd(r.amount)} per ${r.per_units}`,
                    ]),
                    'No prices: usage is charged at network fees only.',
                  )}
                </section>`,
            )}`;
      return { title: 'Plans and prices', active: 'plans', body };
    },
    admin,
  );

  framework.page(
    '/console/admin/usage',
    (pc) =>
      usageView(pc, {
        action: '/console/admin/usage',
        title: 'All usage',
        active: 'all-usage',
        csv: '/console/admin/usage.csv',
        byAccount: true,
      }),
    admin,
  );
  framework.page('/console/admin/usage.csv', (pc) => usageCsv(pc, true, 'all-usage'), admin);

  framework.page(
    '/console/admin/billing',
    async (pc) => {
      const now = new Date();
      const months = [1, 2, 3].map((back) =>
        new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - back, 1))
          .toISOString()
          .slice(0, 7),
      );
      const pages = await Promise.all(
        months.map((m) => pc.api('GET', `/v1/statements?month=${m}&limit=500`)),
      );
      const rows = months.map((month, i) => {
        const list = ok(pages[i]!).body as {
          statements: Array<{ closed_at: string; total_usd_micros: string }>;
          next_cursor: string | null;
        };
        const total = list.statements.reduce((s, st) => s + BigInt(st.total_usd_micros), 0n);
        const last =
          list.statements
            .map((s) => s.closed_at)
            .sort()
            .pop() ?? null;
        return [
          month,
          `${list.statements.length}${list.next_cursor === null ? '' : '+'}`,
          usd(total),
          last === null ? html`<span class="badge warn">not closed</span>` : when(last),
        ];
      });
      const body = html`${table('Month close: statements per month', ['Month', 'Statements', 'Billed', 'Last closed'], rows)}
        <section class="card" aria-labelledby="stripe">
          <h2 id="stripe">Stripe sync</h2>
          ${gap('the /v1 API does not report Stripe sync state yet; see the billing logs and `tollhouse billing` on the server.')}
        </section>`;
      return { title: 'Month close', active: 'billing', body };
    },
    admin,
  );

  framework.page(
    '/console/admin/signer',
    async (pc) => {
      const status = ok(await pc.api('GET', '/v1/signer')).body as Record<string, unknown> & {
        enabled: boolean;
        reason: string | null;
        warnings?: string[];
      };
      const warnings = Array.isArray(status.warnings) ? status.warnings : [];
      const body = html`${status.enabled ? notice('success', 'The signer is enabled.') : notice('warning', `The signer is disabled${status.reason === null ? '' : `: ${status.reason}`}.`)}
        ${
          warnings.length === 0
            ? ''
            : html`<section class="card" aria-labelledby="warn">
                <h2 id="warn">Warnings</h2>
                <ul>
                  ${warnings.map((w) => html`<li>${typeof w === 'string' ? w : JSON.stringify(w)}</li>`)}
                </ul>
              </section>`
        }
        <section class="card" aria-labelledby="signer-facts">
          <h2 id="signer-facts">Status</h2>
          ${facts(status)}
        </section>`;
      return { title: 'Signer', active: 'signer', body };
    },
    admin,
  );

  framework.page(
    '/console/admin/health',
    async (pc) => {
      const [ready, live] = await Promise.all([
        api.call(null, 'GET', '/readyz'),
        api.call(null, 'GET', '/healthz'),
      ]);
      const body = html`<div class="cards">
          <section class="card" aria-labelledby="h-live">
            <h2 id="h-live">Live</h2>
            <p class="figure">${live.status === 200 ? 'yes' : `no (HTTP ${live.status})`}</p>
          </section>
          <section class="card" aria-labelledby="h-ready">
            <h2 id="h-ready">Ready</h2>
            <p class="figure">${ready.status === 200 ? 'yes' : `no (HTTP ${ready.status})`}</p>
          </section>
        </div>
        <section class="card" aria-labelledby="h-checks">
          <h2 id="h-checks">Readiness checks</h2>
          ${typeof ready.body === 'object' && ready.body !== null ? facts(ready.body as Record<string, unknown>) : html`<p>${String(ready.body ?? '')}</p>`}
        </section>`;
      void pc;
      return { title: 'Health', active: 'health', body };
    },
    admin,
  );
}

/** A nested status document as a definition list; `…Wei` fields read as ETH. */
function facts(doc: Record<string, unknown>): Html {
  const rows: Array<[string, Html | string]> = [];
  const walk = (value: unknown, path: string) => {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) walk(v, path === '' ? k : `${path}.${k}`);
      return;
    }
    if (Array.isArray(value)) {
      rows.push([
        path,
        value.length === 0
          ? '—'
          : value.map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(', '),
      ]);
      return;
    }
    if (/Wei$/.test(path) && typeof value === 'string' && /^\d+$/.test(value)) {
      rows.push([path, eth(value)]);
      return;
    }
    rows.push([path, value === null ? '—' : String(value)]);
  };
  walk(doc, '');
  return html`<dl class="facts">
    ${rows.map(
      ([k, v]) =>
        html`<dt>${k}</dt>
          <dd>${v}</dd>`,
    )}
  </dl>`;
}
