// Balance: the prepaid balance and billing mode, "Add credit" (a Stripe Checkout Session, then
// back here), auto-recharge settings with "Save a card" (Checkout in setup mode) and the last
// recharge attempts, which alert e-mails the owner gets, and the whole ledger, paged. Operators
// open it for any account with `?account=acct_…` (from the account's page) and may switch the
// billing mode there. All through /v1: prepaid, ledger, checkout, setup-checkout,
// auto-recharge, billing-mode and alert-emails.
import type { Context } from 'koa';
import { apiMessage, field, fields, ok } from '../framework.ts';
import type { ActionContext, PageContext, PageResult, createFramework } from '../framework.ts';
import { CONTENT_SECURITY_POLICY } from '../framework.ts';
import { html } from '../../platform/html.ts';
import type { Html } from '../../platform/html.ts';
import { csrfField, eth, nextPageLink, notice, table, usd, when } from '../views.ts';
import { dollarsToMicros } from './accounts.ts';
import type { ApiResponse } from '../api.ts';

interface Recharge {
  amount_usd_micros: string;
  state: 'pending' | 'succeeded' | 'failed';
  attempts: number;
  last_error: string | null;
  next_attempt_at: string | null;
  created_at: string;
}

interface Prepaid {
  account_id: string;
  mode: 'postpaid' | 'prepaid';
  auto_recharge: {
    enabled: boolean;
    threshold_usd_micros: string;
    amount_usd_micros: string;
    monthly_max_usd_micros: string;
    payment_method_saved: boolean;
  };
  balance_usd_micros: string;
  month_usage_wei: string;
  month_usage_usd_micros: string | null;
  spendable_usd_micros: string | null;
  top_up_amounts_usd_micros: string[];
  recharges: Recharge[];
}

interface Entry {
  id: string;
  kind: string;
  amount_usd_micros: string;
  reference: string;
  memo: string | null;
  created_at: string;
}

// The alert e-mails a customer can turn off: the ones about its own account (the signer's go to
// the operator's address only).
const CUSTOMER_ALERTS: ReadonlyArray<readonly [string, string]> = [
  ['spend.threshold_reached', 'Spending reached a threshold of a cap'],
  ['balance.low', 'Prepaid balance low'],
  ['balance.depleted', 'Prepaid balance used up'],
  ['balance.recharged', 'Balance credited (top-up or auto-recharge)'],
  ['recharge.failed', 'Auto-recharge failed'],
  ['statement.closed', 'Monthly statement ready'],
  ['key.rotation_due', 'API key due for rotation'],
];

const KIND_LABELS: Record<string, string> = {
  top_up: 'Top-up',
  recharge: 'Auto-recharge',
  grant: 'Grant',
  statement: 'Draw-down (statement)',
  adjustment: 'Adjustment',
  refund: 'Refund',
  dispute: 'Dispute',
};

const DONE: Record<string, string> = {
  'auto-recharge': 'Auto-recharge settings saved.',
  mode: 'Billing mode changed.',
  alerts: 'Alert e-mail choices saved.',
};

const ACCOUNT_ID = /^acct_[0-9A-Za-z]{1,64}$/;
// Checkout Session ids as Stripe makes them (cs_test_…, cs_live_…): anything else in the
// return URL is ignored rather than looked for.
const SESSION_ID = /^cs_[0-9A-Za-z_]{1,200}$/;

/**
 * The origins a console form may send the browser on to: Stripe's hosted Checkout (its
 * documented CSP source), and the configured Stripe API base's origin when there is one (a
 * proxy or a local fake serving Checkout itself).
 */
export function checkoutOrigins(stripeApiBase: string | null): string[] {
  const origins = ['https://checkout.stripe.com'];
  if (stripeApiBase !== null) origins.push(new URL(stripeApiBase).origin);
  return origins;
}

export function balancePages(
  framework: ReturnType<typeof createFramework>,
  options: { checkoutOrigins: readonly string[] },
): void {
  // "Add credit" and "Save a card" answer with a redirect to Stripe: browsers apply the page's
  // form-action to the redirect of a form submission, so this page allows Stripe's origin.
  const csp = CONTENT_SECURITY_POLICY.replace(
    "form-action 'self'",
    `form-action 'self' ${options.checkoutOrigins.join(' ')}`,
  );
  const allowCheckout = (ctx: Context) => ctx.set('Content-Security-Policy', csp);

  framework.page('/console/balance', async (pc) => {
    allowCheckout(pc.ctx);
    return render(pc, {});
  });

  framework.action('/console/balance/add-credit', async (ac) => {
    const account = accountOf(ac, field(ac.form, 'account'));
    const response = await ac.api('POST', `/v1/accounts/${account}/checkout`, {
      amount_usd_micros: field(ac.form, 'amount_usd_micros'),
    });
    if (response.status !== 201) return failed(ac, allowCheckout, checkoutRefused(response));
    const url = (response.body as { url: string | null }).url;
    if (url === null) return failed(ac, allowCheckout, 'Stripe gave no Checkout page to go to.');
    return { redirect: url };
  });

  framework.action('/console/balance/save-card', async (ac) => {
    const account = accountOf(ac, field(ac.form, 'account'));
    const response = await ac.api('POST', `/v1/accounts/${account}/setup-checkout`);
    if (response.status !== 201) return failed(ac, allowCheckout, checkoutRefused(response));
    const url = (response.body as { url: string | null }).url;
    if (url === null) return failed(ac, allowCheckout, 'Stripe gave no Checkout page to go to.');
    return { redirect: url };
  });

  framework.action('/console/balance/auto-recharge', async (ac) => {
    const account = accountOf(ac, field(ac.form, 'account'));
    const enabled = field(ac.form, 'enabled') === 'on';
    const amounts: Record<string, bigint> = {};
    for (const [name, label] of [
      ['threshold', 'Recharge below'],
      ['amount', 'Recharge amount'],
      ['monthly_max', 'Monthly maximum'],
    ] as const) {
      const text = field(ac.form, name);
      const micros = text === '' && !enabled ? 0n : dollarsToMicros(text);
      if (micros === null) {
        return failed(ac, allowCheckout, `${label}: enter dollars, such as 25 or 12.50.`);
      }
      amounts[name] = micros;
    }
    const response = await ac.api('PUT', `/v1/accounts/${account}/auto-recharge`, {
      enabled,
      threshold_usd_micros: amounts.threshold!.toString(),
      amount_usd_micros: amounts.amount!.toString(),
      monthly_max_usd_micros: amounts.monthly_max!.toString(),
    });
    if (response.status !== 200) return failed(ac, allowCheckout, apiMessage(response));
    return { redirect: back(ac, account, 'auto-recharge') };
  });

  framework.action('/console/balance/alert-emails', async (ac) => {
    const account = accountOf(ac, field(ac.form, 'account'));
    const wanted = new Set(fields(ac.form, 'alert'));
    const response = await ac.api('PUT', `/v1/accounts/${account}/alert-emails`, {
      muted_event_types: CUSTOMER_ALERTS.map(([type]) => type).filter((t) => !wanted.has(t)),
    });
    if (response.status !== 200) return failed(ac, allowCheckout, apiMessage(response));
    return { redirect: back(ac, account, 'alerts') };
  });

  framework.action(
    '/console/balance/mode',
    async (ac) => {
      const account = accountOf(ac, field(ac.form, 'account'));
      const response = await ac.api('PUT', `/v1/accounts/${account}/billing-mode`, {
        mode: field(ac.form, 'mode'),
      });
      if (response.status !== 200) return failed(ac, allowCheckout, apiMessage(response));
      return { redirect: back(ac, account, 'mode') };
    },
    { admin: true },
  );
}

/** Why Stripe Checkout could not start, in words for the customer. */
function checkoutRefused(response: ApiResponse): string {
  // 503 StripeNotConfigured: a 5xx body carries no detail, so say what it means here.
  return response.status === 503
    ? 'Payments are not available: this deployment has not set up Stripe.'
    : apiMessage(response);
}

/** The account a form acts on: one's own, or (operators) the one the page was opened for. */
function accountOf(pc: PageContext, requested: string): string {
  if (pc.viewer.isAdmin && ACCOUNT_ID.test(requested)) return requested;
  return pc.session.accountId;
}

function back(pc: PageContext, account: string, done: string): string {
  const params = new URLSearchParams({ done });
  if (account !== pc.session.accountId) params.set('account', account);
  return `/console/balance?${params.toString()}`;
}

async function failed(
  ac: ActionContext,
  allowCheckout: (ctx: Context) => void,
  message: string,
): Promise<PageResult> {
  allowCheckout(ac.ctx);
  return render(ac, { error: message, status: 400, account: field(ac.form, 'account') });
}

async function render(
  pc: PageContext,
  options: { error?: string; status?: number; account?: string },
): Promise<PageResult> {
  const q = pc.ctx.query;
  const requested = options.account ?? (typeof q.account === 'string' ? q.account : '');
  const account = accountOf(pc, requested);
  const own = account === pc.session.accountId;
  const base = `/v1/accounts/${encodeURIComponent(account)}`;
  const params = new URLSearchParams({ limit: '50' });
  if (typeof q.cursor === 'string') params.set('cursor', q.cursor);
  const [prepaidRes, ledgerRes, alertsRes] = await Promise.all([
    pc.api('GET', `${base}/prepaid`),
    pc.api('GET', `${base}/ledger?${params.toString()}`),
    pc.api('GET', `${base}/alert-emails`),
  ]);
  const p = ok(prepaidRes).body as Prepaid;
  const ledger = ok(ledgerRes).body as { entries: Entry[]; next_cursor: string | null };
  const muted = new Set((ok(alertsRes).body as { muted_event_types: string[] }).muted_event_types);
  const hidden = own ? '' : html`<input type="hidden" name="account" value="${account}" />`;
  const form = (action: string, inner: Html, extra = '') =>
    html`<form method="post" action="/console/balance/${action}" ${extra}>
      ${csrfField(pc.viewer)} ${hidden} ${inner}
    </form>`;

  const body = html`${notice('error', options.error ?? null)}
    ${notice(
      'success',
      typeof q.done === 'string' && q.done in DONE ? (DONE[q.done] ?? null) : null,
    )}
    ${returned(pc, p, ledger.entries, account)}
    ${own ? '' : html`<p>Account <code>${account}</code>, as its owner sees it.</p>`}
    <div class="cards">
      <section class="card" aria-labelledby="bal-balance">
        <h2 id="bal-balance">Balance</h2>
        <p class="figure" id="balance">${usd(p.balance_usd_micros)}</p>
        <p class="muted">
          <data id="balance-micros" value="${p.balance_usd_micros}">${p.balance_usd_micros}</data>
          micro-dollars in the ledger (credits, top-ups and recharges less closed statements,
          refunds and disputes).
        </p>
      </section>
      <section class="card" aria-labelledby="bal-month">
        <h2 id="bal-month">Usage this month</h2>
        <p class="figure" id="month-usage">${eth(p.month_usage_wei)}</p>
        <p class="muted">
          ${
            p.month_usage_usd_micros === null
              ? 'No ETH/USD rate at the moment.'
              : html`${usd(p.month_usage_usd_micros)} at cost, drawn from the balance when the month
                closes.`
          }
        </p>
      </section>
      <section class="card" aria-labelledby="bal-spendable">
        <h2 id="bal-spendable">Left to spend</h2>
        <p class="figure" id="spendable">
          ${p.spendable_usd_micros === null ? 'unknown' : usd(p.spendable_usd_micros)}
        </p>
        <p class="muted">
          Billing mode: <strong id="billing-mode">${p.mode}</strong>.
          ${
            p.mode === 'prepaid'
              ? 'Requests are admitted while the balance covers them.'
              : 'Usage is invoiced monthly; credit is used first.'
          }
        </p>
      </section>
    </div>
    ${pc.viewer.isAdmin ? modeForm(p, form) : ''}
    <section class="card" aria-labelledby="bal-add">
      <h2 id="bal-add">Add credit</h2>
      ${
        p.top_up_amounts_usd_micros.length === 0
          ? html`<p class="muted">The operator offers no top-up amounts.</p>`
          : form(
              'add-credit',
              html`<fieldset>
                  <legend>Amount</legend>
                  ${p.top_up_amounts_usd_micros.map(
                    (a, i) =>
                      html`<label
                        ><input
                          type="radio"
                          name="amount_usd_micros"
                          value="${a}"
                          ${i === 0 ? html` checked` : ''}
                        />
                        ${usd(a)}</label
                      >`,
                  )}
                </fieldset>
                <p class="hint">You pay on Stripe's page, then come back here.</p>
                <button type="submit">Add credit</button>`,
            )
      }
    </section>
    ${autoRechargeSection(p, form)} ${alertSection(muted, form)}
    <section class="card" aria-labelledby="bal-history">
      <h2 id="bal-history">History</h2>
      ${table(
        'Ledger entries, newest first',
        ['When', 'What', 'Amount', 'Reference'],
        ledger.entries.map((e) => [
          when(e.created_at),
          html`${KIND_LABELS[e.kind] ?? e.kind}${
            e.memo === null ? '' : html`<div class="muted">${e.memo}</div>`
          }`,
          html`<span class="num">${usd(e.amount_usd_micros)}</span>`,
          html`<code>${e.reference}</code>`,
        ]),
        'No credit, top-up or statement yet.',
      )}
      ${
        own
          ? nextPageLink('/console/balance', ledger.next_cursor, 'entries (older)')
          : ledger.next_cursor === null
            ? ''
            : html`<p>
                <a
                  href="/console/balance?account=${account}&cursor=${encodeURIComponent(
                    ledger.next_cursor,
                  )}"
                  >More entries (older) →</a
                >
              </p>`
      }
    </section>`;
  return { title: 'Balance', active: 'balance', body, status: options.status };
}

/** The notice after coming back from Stripe: credited, or still being confirmed. */
function returned(pc: PageContext, p: Prepaid, entries: Entry[], account: string): Html | string {
  const q = pc.ctx.query;
  const refresh = (param: string, id: string) =>
    html`<a
      href="/console/balance?${param}=${encodeURIComponent(id)}${
        account === pc.session.accountId ? '' : `&account=${account}`
      }"
      >Refresh</a
    >`;
  const checkout = typeof q.checkout === 'string' ? q.checkout : '';
  if (SESSION_ID.test(checkout)) {
    // The newest page of the ledger is read with the page: a fresh credit is on it.
    const credited = entries.find((e) => e.reference === `stripe:checkout:${checkout}`);
    if (credited !== undefined) {
      return html`<p class="notice success" role="status" id="checkout-result">
        Payment received: ${usd(credited.amount_usd_micros)} added. Your balance is
        ${usd(p.balance_usd_micros)}.
      </p>`;
    }
    return html`<p class="notice warning" role="status" id="checkout-result">
      Your payment is being confirmed by Stripe; the credit appears in a moment.
      ${refresh('checkout', checkout)}
    </p>`;
  }
  if (typeof q.setup === 'string' && SESSION_ID.test(q.setup)) {
    return p.auto_recharge.payment_method_saved
      ? html`<p class="notice success" role="status" id="setup-result">
          Card saved: auto-recharge can use it.
        </p>`
      : html`<p class="notice warning" role="status" id="setup-result">
          Your card is being confirmed by Stripe. ${refresh('setup', q.setup)}
        </p>`;
  }
  return '';
}

type FormOf = (action: string, inner: Html, extra?: string) => Html;

function modeForm(p: Prepaid, form: FormOf): Html {
  return html`<section class="card" aria-labelledby="bal-mode">
    <h2 id="bal-mode">Billing mode (operator)</h2>
    ${form(
      'mode',
      html`<label for="mode">Mode</label>
        <select id="mode" name="mode">
          <option value="postpaid" ${p.mode === 'postpaid' ? html` selected` : ''}>
            Postpaid: invoiced monthly
          </option>
          <option value="prepaid" ${p.mode === 'prepaid' ? html` selected` : ''}>
            Prepaid: spend the balance
          </option>
        </select>
        <button type="submit" class="secondary">Change mode</button>`,
    )}
  </section>`;
}

const dollars = (micros: string) => (micros === '0' ? '' : usd(micros).replace(/^\$/, ''));

/** A labelled amount in dollars (the form posts dollars; the API takes micro-dollars). */
const dollarField = (id: string, name: string, label: string, micros: string) =>
  html`<label for="${id}">${label} (USD)</label>
    <input id="${id}" name="${name}" inputmode="decimal" value="${dollars(micros)}" />`;

function autoRechargeSection(p: Prepaid, form: FormOf): Html {
  const a = p.auto_recharge;
  return html`<section class="card" aria-labelledby="bal-recharge">
    <h2 id="bal-recharge">Auto-recharge</h2>
    <p id="card-state">
      ${
        a.payment_method_saved
          ? 'A card is saved for auto-recharge.'
          : 'No card saved yet: save one, or add credit once (that card is kept).'
      }
    </p>
    ${form('save-card', html`<button type="submit" class="secondary">Save a card</button>`)}
    ${form(
      'auto-recharge',
      html`<label
          ><input type="checkbox" name="enabled" ${a.enabled ? html` checked` : ''} /> Recharge
          automatically</label
        >
        ${dollarField('ar-threshold', 'threshold', 'Recharge below', a.threshold_usd_micros)}
        ${dollarField('ar-amount', 'amount', 'Recharge amount', a.amount_usd_micros)}
        ${dollarField('ar-max', 'monthly_max', 'Monthly maximum', a.monthly_max_usd_micros)}
        <button type="submit">Save auto-recharge</button>`,
    )}
    ${table(
      'Recent recharge attempts',
      ['Opened', 'Amount', 'State', 'Attempts', 'Last error', 'Next try'],
      p.recharges.map((r) => [
        when(r.created_at),
        usd(r.amount_usd_micros),
        html`<span
          class="badge ${r.state === 'succeeded' ? 'good' : r.state === 'failed' ? 'bad' : 'warn'}"
          >${r.state}</span
        >`,
        r.attempts,
        r.last_error ?? '',
        r.next_attempt_at === null ? '' : when(r.next_attempt_at),
      ]),
      'No recharge yet.',
    )}
  </section>`;
}

function alertSection(muted: Set<string>, form: FormOf): Html {
  return html`<section class="card" aria-labelledby="bal-alerts">
    <h2 id="bal-alerts">Alert e-mails</h2>
    ${form(
      'alert-emails',
      html`<fieldset>
          <legend>E-mail me when</legend>
          ${CUSTOMER_ALERTS.map(
            ([type, label]) =>
              html`<label
                ><input
                  type="checkbox"
                  name="alert"
                  value="${type}"
                  ${muted.has(type) ? '' : html` checked`}
                />
                ${label}</label
              >`,
          )}
        </fieldset>
        <p class="hint">Webhook endpoints are not affected: each chooses its own events.</p>
        <button type="submit" class="secondary">Save alert e-mails</button>`,
    )}
  </section>`;
}
