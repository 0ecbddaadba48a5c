// Statements: the closed months, one statement's lines, and its export (CSV or JSON lines)
// streamed through from /v1/statements/{id}/export.
import { Readable } from 'node:stream';
import type { ApiClient } from '../api.ts';
import { SignInRequired } from '../errors.ts';
import { ok } from '../framework.ts';
import type { createFramework } from '../framework.ts';
import { html } from '../../platform/html.ts';
import { eth, table, usd, when } from '../views.ts';

interface Statement {
  id: string;
  account_id: string;
  month: string;
  plan_id: string | null;
  closed_at: string;
  fee_wei: string;
  usage_usd_micros: string;
  monthly_fee_usd_micros: string;
  included_applied_usd_micros: string;
  credits_applied_usd_micros: string;
  total_usd_micros: string;
  billing_mode: 'postpaid' | 'prepaid';
  balance: {
    opening_usd_micros: string;
    credits_usd_micros: string;
    debits_usd_micros: string;
    settled_usd_micros: string;
    closing_usd_micros: string;
  } | null;
}

const KIND_LABELS: Record<string, string> = {
  top_up: 'Top-up',
  recharge: 'Auto-recharge',
  grant: 'Grant',
  adjustment: 'Adjustment',
  refund: 'Refund',
  dispute: 'Dispute',
  statement: 'Settled by this statement',
};

const STATEMENT_ID = /^stmt_[0-9A-Za-z]{1,64}$/;

export function statementPages(framework: ReturnType<typeof createFramework>, api: ApiClient) {
  framework.page('/console/statements', async (pc) => {
    // An operator's token lists every account's statements; this page is about one's own.
    const account = encodeURIComponent(pc.session.accountId);
    const list = ok(await pc.api('GET', `/v1/statements?limit=100&account_id=${account}`)).body as {
      statements: Statement[];
    };
    const own = list.statements;
    const body = table(
      'Monthly statements',
      ['Month', 'Plan', 'Usage', 'Total', 'Closed', 'Download'],
      own.map((s) => [
        html`<a href="/console/statements/${s.id}">${s.month}</a>`,
        s.plan_id ?? '—',
        usd(s.usage_usd_micros),
        usd(s.total_usd_micros),
        when(s.closed_at),
        html`<a href="/console/statements/${s.id}/export?format=csv" download
            >CSV<span class="sr"> for ${s.month}</span></a
          >
          ·
          <a href="/console/statements/${s.id}/export?format=json" download
            >JSON<span class="sr"> for ${s.month}</span></a
          >`,
      ]),
      'No statements yet: a statement is made when a month closes.',
    );
    return { title: 'Statements', active: 'statements', body };
  });

  framework.page('/console/statements/:id', async (pc) => {
    const id = pc.ctx.params.id!;
    if (!STATEMENT_ID.test(id)) return notFound();
    const response = await pc.api('GET', `/v1/statements/${id}`);
    if (response.status === 404 || response.status === 400) return notFound();
    const s = ok(response).body as Statement & {
      lines: Array<{
        line: number;
        origin_month: string;
        late: boolean;
        pipeline: string;
        model_id: string;
        unit: string;
        events: string;
        quantity: string;
        fee_wei: string;
        charge_usd_micros: string;
      }>;
      ledger_entries: Array<{
        kind: string;
        amount_usd_micros: string;
        reference: string;
        created_at: string;
      }>;
    };
    const prepaid = s.billing_mode === 'prepaid';
    // A prepaid month is paid from the balance: the balance section is the statement's point,
    // so it says how the closing balance follows from the opening one.
    const balance =
      s.balance === null
        ? ''
        : html`<section class="card" aria-labelledby="st-balance">
              <h2 id="st-balance">${prepaid ? 'Prepaid balance' : 'Credit balance'}</h2>
              <dl class="facts">
                <dt>Opening balance</dt>
                <dd>${usd(s.balance.opening_usd_micros)}</dd>
                <dt>Top-ups and grants</dt>
                <dd>+${usd(s.balance.credits_usd_micros)}</dd>
                <dt>Refunds, disputes and other debits</dt>
                <dd>${usd(s.balance.debits_usd_micros)}</dd>
                <dt>${prepaid ? 'Usage paid from the balance' : 'Credits applied'}</dt>
                <dd>−${usd(s.balance.settled_usd_micros)}</dd>
                <dt>Closing balance</dt>
                <dd><strong>${usd(s.balance.closing_usd_micros)}</strong></dd>
              </dl>
              ${
                prepaid
                  ? html`<p>
                      This month was prepaid: it was paid from the balance and is not invoiced.
                    </p>`
                  : ''
              }
            </section>
            ${table(
              'Balance movements',
              ['Date', 'Kind', 'Amount', 'Reference'],
              s.ledger_entries.map((e) => [
                when(e.created_at),
                KIND_LABELS[e.kind] ?? e.kind,
                usd(e.amount_usd_micros),
                e.reference,
              ]),
              'No balance movements this month.',
            )}`;
    const body = html`<section class="card" aria-labelledby="st-summary">
        <h2 id="st-summary">Summary</h2>
        <dl class="facts">
          <dt>Month</dt>
          <dd>${s.month}</dd>
          <dt>Plan</dt>
          <dd>${s.plan_id ?? '—'}</dd>
          <dt>Network fees</dt>
          <dd>${eth(s.fee_wei)}</dd>
          <dt>Usage</dt>
          <dd>${usd(s.usage_usd_micros)}</dd>
          <dt>Monthly fee</dt>
          <dd>${usd(s.monthly_fee_usd_micros)}</dd>
          <dt>Included usage applied</dt>
          <dd>−${usd(s.included_applied_usd_micros)}</dd>
          <dt>Credits applied</dt>
          <dd>−${usd(s.credits_applied_usd_micros)}</dd>
          <dt>${prepaid ? 'Total due (paid from the balance)' : 'Total'}</dt>
          <dd><strong>${usd(s.total_usd_micros)}</strong></dd>
          <dt>Closed</dt>
          <dd>${when(s.closed_at)}</dd>
        </dl>
        <p>
          <a class="button" href="/console/statements/${s.id}/export?format=csv" download
            >Download CSV</a
          >
          <a class="button secondary" href="/console/statements/${s.id}/export?format=json" download
            >Download JSON</a
          >
        </p>
      </section>
      ${balance}
      ${table(
        'Statement lines',
        ['Pipeline', 'Model', 'Unit', 'Events', 'Quantity', 'Charge', 'Note'],
        s.lines.map((l) => [
          l.pipeline,
          l.model_id,
          l.unit,
          l.events,
          l.quantity,
          usd(l.charge_usd_micros),
          l.late ? `late usage from ${l.origin_month}` : '',
        ]),
        'No usage this month.',
      )}`;
    return { title: `Statement for ${s.month}`, active: 'statements', body };
  });

  // The export is the API's own file, streamed through with its headers.
  framework.page('/console/statements/:id/export', async (pc) => {
    const id = pc.ctx.params.id!;
    const format = pc.ctx.query.format === 'json' ? 'json' : 'csv';
    if (!STATEMENT_ID.test(id)) return notFound();
    const response = await api.fetch(`/v1/statements/${id}/export?format=${format}`, {
      headers: { authorization: `Bearer ${pc.session.accessToken}` },
    });
    if (response.status === 401) throw new SignInRequired();
    if (response.status !== 200 || response.body === null) {
      await response.body?.cancel();
      return notFound();
    }
    pc.ctx.status = 200;
    pc.ctx.type = response.headers.get('content-type') ?? 'application/octet-stream';
    const disposition = response.headers.get('content-disposition');
    if (disposition !== null) pc.ctx.set('Content-Disposition', disposition);
    pc.ctx.body = Readable.fromWeb(response.body);
    return null;
  });
}

function notFound() {
  return {
    title: 'Statement not found',
    active: 'statements',
    status: 404,
    body: html`<p>There is no such statement on your account.</p>
      <p><a href="/console/statements">All statements</a></p>`,
  };
}
