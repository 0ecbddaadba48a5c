// Operator: accounts — search by email or name, see one's balance, plan and caps; grant credit,
// change its plan, disable or enable it. Everything goes through /v1 with the operator's token.
import { randomBytes } from 'node:crypto';
import { apiMessage, field, ok } from '../framework.ts';
import type { ActionContext, PageContext, PageResult, createFramework } from '../framework.ts';
import { html } from '../../platform/html.ts';
import type { Html } from '../../platform/html.ts';
import { csrfField, doneMessage, notice, table, usd, when, eth } from '../views.ts';
import type { Viewer } from '../views.ts';

const ACCOUNT_ID = /^acct_[0-9A-Za-z]{1,64}$/;

/** An account as GET /v1/accounts answers it. */
interface AccountJson {
  id: string;
  email: string;
  name: string | null;
  status: 'active' | 'disabled';
  is_admin: boolean;
  created_at: string;
}
// Dollars with up to six decimals (micro-dollars), at most a trillion: a typo guard.
const DOLLARS = /^(\d{1,12})(?:\.(\d{1,6}))?$/;

const DONE: Record<string, string> = {
  credit: 'Credit granted.',
  duplicate: 'That credit was already recorded (the form was sent twice); nothing changed.',
  plan: 'Plan changed.',
  disabled: 'Account disabled.',
  active: 'Account enabled.',
};

/** "12.5" → 12_500_000n micro-dollars; null when it is not an amount. */
export function dollarsToMicros(text: string): bigint | null {
  const match = DOLLARS.exec(text.replace(/^\$/, '').replaceAll(',', ''));
  if (match === null) return null;
  return BigInt(match[1]!) * 1_000_000n + BigInt((match[2] ?? '').padEnd(6, '0'));
}

export function accountPages(framework: ReturnType<typeof createFramework>): void {
  const admin = { admin: true };

  framework.page(
    '/console/admin/accounts',
    async (pc) => {
      const q = typeof pc.ctx.query.q === 'string' ? pc.ctx.query.q.trim().slice(0, 320) : '';
      if (ACCOUNT_ID.test(q)) {
        pc.ctx.status = 303;
        pc.ctx.redirect(`/console/admin/accounts/${q}`);
        return null;
      }
      const params = new URLSearchParams({ limit: '50', ...(q === '' ? {} : { q }) });
      const response = await pc.api('GET', `/v1/accounts?${params.toString()}`);
      const accounts = ok(response).body.accounts as AccountJson[];
      const results = table(
        'Accounts',
        ['Account', 'Email', 'Name', 'Status', 'Created'],
        accounts.map((a) => [
          html`<a href="/console/admin/accounts/${a.id}">${a.id}</a>`,
          a.email,
          a.name ?? '',
          a.status,
          when(a.created_at),
        ]),
        q === '' ? 'No accounts.' : 'No account matches.',
      );
      const body = html`<form
          method="get"
          action="/console/admin/accounts"
          class="card"
          role="search"
        >
          <label for="acct-q">Email or account id</label>
          <input id="acct-q" name="q" type="search" value="${q}" />
          <button type="submit">Search</button>
        </form>
        ${results}`;
      return { title: 'Accounts', active: 'accounts', body };
    },
    admin,
  );

  framework.page(
    '/console/admin/accounts/:id',
    async (pc) => {
      const done = doneMessage(pc.ctx.query, DONE);
      return detail(pc, { success: done });
    },
    admin,
  );

  framework.action(
    '/console/admin/accounts/:id/credits',
    async (ac) => {
      const id = ac.ctx.params.id!;
      const amount = dollarsToMicros(field(ac.form, 'amount'));
      const kind = field(ac.form, 'kind');
      const reference = field(ac.form, 'reference');
      if (amount === null || amount === 0n) {
        return detail(ac, {
          error: 'Enter an amount in dollars, such as 25 or 12.50.',
          status: 400,
        });
      }
      if (kind !== 'grant' && kind !== 'top_up') {
        return detail(ac, { error: 'Choose a grant or a top-up.', status: 400 });
      }
      if (!/^[A-Za-z0-9_-]{16,64}$/.test(reference)) {
        return detail(ac, {
          error: 'The form is missing its reference. Reload the page.',
          status: 400,
        });
      }
      const memo = field(ac.form, 'memo').slice(0, 500);
      const response = await ac.api('POST', `/v1/accounts/${encodeURIComponent(id)}/credits`, {
        amount_usd_micros: amount.toString(),
        kind,
        // The form's reference makes a double submit record the credit once (the API is
        // idempotent per reference).
        reference: `console:${reference}`,
        ...(memo === '' ? {} : { memo }),
      });
      if (response.status !== 201 && response.status !== 200) {
        return detail(ac, { error: apiMessage(response), status: 400 });
      }
      return {
        redirect: `/console/admin/accounts/${id}?done=${response.status === 201 ? 'credit' : 'duplicate'}`,
      };
    },
    admin,
  );

  framework.action(
    '/console/admin/accounts/:id/plan',
    async (ac) => {
      const id = ac.ctx.params.id!;
      const plan = field(ac.form, 'plan_id');
      if (plan === '') return detail(ac, { error: 'Choose a plan.', status: 400 });
      const response = await ac.api('PUT', `/v1/accounts/${encodeURIComponent(id)}/subscription`, {
        plan_id: plan,
      });
      if (response.status !== 200) return detail(ac, { error: apiMessage(response), status: 400 });
      return { redirect: `/console/admin/accounts/${id}?done=plan` };
    },
    admin,
  );

  framework.action(
    '/console/admin/accounts/:id/status',
    async (ac) => {
      const id = ac.ctx.params.id!;
      const status = field(ac.form, 'status');
      if (status !== 'active' && status !== 'disabled') {
        return detail(ac, { error: 'Choose to enable or disable the account.', status: 400 });
      }
      const response = await ac.api('PATCH', `/v1/accounts/${encodeURIComponent(id)}`, { status });
      if (response.status !== 200) return detail(ac, { error: apiMessage(response), status: 400 });
      return { redirect: `/console/admin/accounts/${id}?done=${status}` };
    },
    admin,
  );
}

async function detail(
  pc: PageContext | ActionContext,
  options: { error?: string; success?: string | null; status?: number },
): Promise<PageResult> {
  const id = pc.ctx.params.id!;
  if (!ACCOUNT_ID.test(id)) {
    return {
      title: 'Account not found',
      active: 'accounts',
      status: 404,
      body: notice('error', 'That is not an account id.'),
    };
  }
  const path = `/v1/accounts/${encodeURIComponent(id)}`;
  const [account, balance, subscription, caps, plans] = await Promise.all([
    pc.api('GET', path),
    pc.api('GET', `${path}/balance`),
    pc.api('GET', `${path}/subscription`),
    pc.api('GET', `${path}/spend-caps`),
    pc.api('GET', '/v1/plans'),
  ]);
  if (account.status === 404 || balance.status === 404) {
    return {
      title: 'Account not found',
      active: 'accounts',
      status: 404,
      body: notice('error', `No account ${id}.`),
    };
  }
  const a = ok(account).body as AccountJson;
  const b = ok(balance).body as {
    balance_usd_micros: string;
    entries: Array<{
      kind: string;
      amount_usd_micros: string;
      reference: string;
      memo: string | null;
      created_at: string;
    }>;
  };
  const s = ok(subscription).body as {
    current_plan: { id: string; name: string } | null;
    current_month: string;
    history: Array<{ plan_id: string; effective_month: string }>;
  };
  const upcoming = s.history.filter((h) => h.effective_month > s.current_month);
  const c = ok(caps).body as {
    caps: Array<{ app_id: string | null; end_user_id: string | null; monthly_cap_wei: string }>;
  };
  const planList = (ok(plans).body as { plans: Array<{ id: string; name: string }> }).plans;
  const body = html`${notice('error', options.error ?? null)}
    ${notice('success', options.success ?? null)}
    <div class="cards">
      <section class="card" aria-labelledby="acct-who">
        <h2 id="acct-who">Account</h2>
        <p class="figure" id="account-email">${a.email}</p>
        <p class="muted">${a.name ?? 'no name'}${a.is_admin ? ' · operator' : ''}</p>
        <p>Status: <strong id="account-status">${a.status}</strong></p>
      </section>
      <section class="card" aria-labelledby="acct-balance">
        <h2 id="acct-balance">Balance</h2>
        <p class="figure" id="account-balance">${usd(b.balance_usd_micros)}</p>
        <p><a href="/console/balance?account=${id}">Prepaid, auto-recharge and history</a></p>
      </section>
      <section class="card" aria-labelledby="acct-plan">
        <h2 id="acct-plan">Plan</h2>
        <p class="figure">${s.current_plan?.name ?? 'none'}</p>
        <p class="muted">for ${s.current_month}</p>
        ${
          upcoming.length === 0
            ? ''
            : html`<ul id="plan-changes">
                ${upcoming.map((h) => html`<li>${h.plan_id} from ${h.effective_month}</li>`)}
              </ul>`
        }
      </section>
      <section class="card" aria-labelledby="acct-caps">
        <h2 id="acct-caps">Spend caps</h2>
        ${
          c.caps.length === 0
            ? html`<p class="muted">No caps.</p>`
            : html`<ul>
                ${c.caps.map((cap) => html`<li>${cap.app_id ?? 'whole account'}${cap.end_user_id === null ? '' : ` / ${cap.end_user_id}`}: ${eth(cap.monthly_cap_wei)} a month</li>`)}
              </ul>`
        }
      </section>
    </div>
    ${creditForm(pc.viewer, id)}
    <section class="card" aria-labelledby="acct-change-plan">
      <h2 id="acct-change-plan">Change plan</h2>
      <form method="post" action="/console/admin/accounts/${id}/plan">
        ${csrfField(pc.viewer)}
        <label for="plan">Plan</label>
        <select id="plan" name="plan_id">
          ${planList.map((p) => html`<option value="${p.id}" ${p.id === s.current_plan?.id ? html` selected` : ''}>${p.name} (${p.id})</option>`)}
        </select>
        <div><button type="submit">Change plan</button></div>
      </form>
    </section>
    <section class="card" aria-labelledby="acct-status">
      <h2 id="acct-status">Access</h2>
      ${
        a.status === 'active'
          ? html`<form
              method="post"
              action="/console/admin/accounts/${id}/status"
              class="inline"
              data-confirm="Disable this account? Its keys and sign-ins stop working."
            >
              ${csrfField(pc.viewer)}<input type="hidden" name="status" value="disabled" />
              <button type="submit" class="danger">Disable account</button>
            </form>`
          : html`<form method="post" action="/console/admin/accounts/${id}/status" class="inline">
              ${csrfField(pc.viewer)}<input type="hidden" name="status" value="active" />
              <button type="submit" class="secondary">Enable account</button>
            </form>`
      }
    </section>
    ${table(
      'Ledger entries',
      ['When', 'Kind', 'Amount', 'Reference', 'Memo'],
      b.entries.map((e) => [
        when(e.created_at),
        e.kind,
        usd(e.amount_usd_micros),
        e.reference,
        e.memo ?? '',
      ]),
      'No ledger entries.',
    )}`;
  return { title: `Account ${id}`, active: 'accounts', body, status: options.status };
}

function creditForm(viewer: Viewer, id: string): Html {
  // A fresh reference per rendered form: submitting the same form twice records one credit.
  const reference = randomBytes(16).toString('base64url');
  return html`<section class="card" aria-labelledby="acct-credit">
    <h2 id="acct-credit">Grant credit</h2>
    <form method="post" action="/console/admin/accounts/${id}/credits">
      ${csrfField(viewer)}<input type="hidden" name="reference" value="${reference}" />
      <label for="credit-amount">Amount in US dollars</label>
      <input
        id="credit-amount"
        name="amount"
        type="text"
        inputmode="decimal"
        required
        placeholder="25.00"
      />
      <fieldset>
        <legend>Kind</legend>
        <label><input type="radio" name="kind" value="grant" checked /> Grant (free credit)</label>
        <label><input type="radio" name="kind" value="top_up" /> Top-up (paid)</label>
      </fieldset>
      <label for="credit-memo">Memo (optional)</label>
      <input id="credit-memo" name="memo" type="text" maxlength="500" />
      <div><button type="submit">Grant credit</button></div>
    </form>
  </section>`;
}
