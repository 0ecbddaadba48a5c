// Operator pages: plans and prices, every account's usage, month close, the payment signer and
// health (readiness, the webhook backlog with failing and disabled endpoints, failed auto-recharges
// across accounts). Views of /v1 (and /readyz), shown only to sessions with the admin scope; the signer
// page also acts (fund, fund for, unlock, cancel unlock, withdraw) through POST /v1/signer/….
import type { ApiClient } from '../api.ts';
import { formatEther, parseEther } from 'ethers';
import { apiMessage, field, ok } from '../framework.ts';
import type { ApiResponse } from '../api.ts';
import type { PageContext, PageResult, createFramework } from '../framework.ts';
import { html } from '../../platform/html.ts';
import type { Html } from '../../platform/html.ts';
import { csrfField, eth, notice, table, usd, when } from '../views.ts';
import type { Viewer } from '../views.ts';
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
      const now = pc.clock();
      const months = [1, 2, 3].map((back) =>
        new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - back, 1))
          .toISOString()
          .slice(0, 7),
      );
      const [pages, sync, failing] = await Promise.all([
        Promise.all(months.map((m) => pc.api('GET', `/v1/statements?month=${m}&limit=500`))),
        pc.api('GET', '/v1/billing/stripe-sync?months=3&limit=50'),
        pc.api('GET', '/v1/billing/stripe-sync?months=3&status=failed&limit=100'),
      ]);
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
      ${stripeSyncBody(ok(sync).body as StripeSync, ok(failing).body as StripeSync)}`;
      return { title: 'Month close', active: 'billing', body };
    },
    admin,
  );

  // The signer page: status, the operator's actions (each previewed, then confirmed), the
  // funding journal. Rendered again, with the outcome on top, after an action.
  const signerPage = async (
    pc: PageContext,
    outcome: { error?: string; success?: string; status?: number } = {},
  ): Promise<PageResult> => {
    // Older pages of the journal through ?funding_cursor=; anything but an id is ignored.
    const raw = pc.ctx.query.funding_cursor;
    const cursor = typeof raw === 'string' && /^ftx_[0-9A-Za-z]{22}$/.test(raw) ? raw : null;
    const [status, funding] = await Promise.all([
      pc.api('GET', '/v1/signer'),
      pc.api(
        'GET',
        `/v1/signer/funding?limit=${FUNDING_PAGE}${cursor === null ? '' : `&cursor=${cursor}`}`,
      ),
    ]);
    const s = ok(status).body as SignerStatus;
    return {
      title: 'Signer',
      active: 'signer',
      ...(outcome.status === undefined ? {} : { status: outcome.status }),
      body: html`${notice('error', outcome.error ?? null)}${notice('success', outcome.success ?? null)}
      ${signerBody(s, ok(funding).body as FundingPage, cursor !== null)}
      ${s.enabled ? signerActions(pc.viewer, s) : ''}`,
    };
  };

  framework.page('/console/admin/signer', (pc) => signerPage(pc), admin);

  // Step one: the API's preview (amounts, gas, caps) and a form that confirms exactly it.
  framework.action(
    '/console/admin/signer/preview',
    async (ac) => {
      const op = field(ac.form, 'operation');
      if (!isOperation(op)) return signerPage(ac, { error: 'Choose an operation.', status: 400 });
      const body: Record<string, unknown> = { dry_run: true };
      if (op === 'fund' || op === 'fund-for') {
        const deposit = weiOf(field(ac.form, 'deposit_eth'));
        const reserve = weiOf(field(ac.form, 'reserve_eth'));
        if (deposit === null || reserve === null) {
          return signerPage(ac, {
            error: 'Amounts are in ETH, e.g. 0.5 (at most 18 decimals), or left empty.',
            status: 400,
          });
        }
        if (deposit !== '0') body.deposit_wei = deposit;
        if (reserve !== '0') body.reserve_wei = reserve;
      }
      if (op === 'fund-for') body.beneficiary = field(ac.form, 'beneficiary');
      const response = await ac.api('POST', `/v1/signer/${op}`, body);
      if (response.status !== 200) {
        return signerPage(ac, { error: apiMessage(response), status: refusedStatus(response) });
      }
      return {
        title: 'Confirm signer operation',
        active: 'signer',
        body: confirmBody(ac.viewer, op, response.body as OperationPreview),
      };
    },
    admin,
  );

  // Step two: sends what the preview showed (once, however often the form is posted).
  framework.action(
    '/console/admin/signer/confirm',
    async (ac) => {
      const op = field(ac.form, 'operation');
      const token = field(ac.form, 'confirmation_token');
      if (!isOperation(op)) return signerPage(ac, { error: 'Choose an operation.', status: 400 });
      const response = await ac.api('POST', `/v1/signer/${op}`, { confirmation_token: token });
      if (response.status !== 200) {
        return signerPage(ac, { error: apiMessage(response), status: refusedStatus(response) });
      }
      const { transaction: t, replayed } = response.body as {
        transaction: FundingTx;
        replayed: boolean;
      };
      const said = `${t.kind.replace('_', ' ')} ${t.status}${t.tx_hash === null ? '' : ` in ${t.tx_hash}`}${replayed ? ' (already sent from this confirmation; nothing was sent again)' : ''}.`;
      return t.status === 'confirmed' || t.status === 'sent'
        ? signerPage(ac, { success: `Done: ${said}` })
        : signerPage(ac, { error: `Not done: ${said}${t.error === null ? '' : ` ${t.error}`}` });
    },
    admin,
  );

  framework.page(
    '/console/admin/health',
    async (pc) => {
      const [ready, live, hooks, endpoints, recharges] = await Promise.all([
        api.call(null, 'GET', '/readyz'),
        api.call(null, 'GET', '/healthz'),
        pc.api('GET', '/v1/webhooks/health'),
        pc.api('GET', '/v1/webhooks/endpoints'),
        pc.api('GET', '/v1/billing/recharges'),
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
        </section>
        ${webhookHealth(ok(hooks).body as WebhookHealth, (ok(endpoints).body as { endpoints: Endpoint[] }).endpoints)}
        ${rechargeFailures((ok(recharges).body as { recharges: RechargeRow[] }).recharges)}`;
      return { title: 'Health', active: 'health', body };
    },
    admin,
  );
}

interface StripeSyncRow {
  statement_id: string;
  account_id: string;
  month: string;
  total_usd_micros: string;
  status: 'pending' | 'failed' | 'synced' | 'skipped';
  state: string;
  attempts: number;
  last_error: string | null;
  next_attempt_at: string | null;
  updated_at: string;
  stripe_invoice_id: string | null;
  stripe_customer_id: string | null;
}

interface StripeSync {
  configured: boolean;
  webhooks_configured: boolean;
  finalize_invoices: boolean;
  months: Array<{
    month: string;
    statements: number;
    pending: number;
    failed: number;
    synced: number;
    skipped: number;
    states: { paid: number; payment_failed: number };
  }>;
  statements: StripeSyncRow[];
  next_cursor: string | null;
}

const SYNC_BADGE: Record<StripeSyncRow['status'], string> = {
  pending: 'badge',
  failed: 'badge warn',
  synced: 'badge good',
  skipped: 'badge',
};

/** GET /v1/billing/stripe-sync: `all` is the first page of every status, `failing` of failed. */
function stripeSyncBody(all: StripeSync, failing: StripeSync): Html {
  const yes = (v: boolean) => (v ? 'yes' : 'no');
  return html`<section class="card" aria-labelledby="stripe">
    <h2 id="stripe">Stripe sync</h2>
    ${
      all.configured
        ? ''
        : notice(
            'warning',
            'Stripe is not configured (STRIPE_SECRET_KEY): closed statements wait as pending.',
          )
    }
    <dl class="facts">
      <dt>Configured</dt>
      <dd id="stripe-configured">${yes(all.configured)}</dd>
      <dt>Webhooks</dt>
      <dd>${yes(all.webhooks_configured)}</dd>
      <dt>Invoices finalized</dt>
      <dd>${yes(all.finalize_invoices)}</dd>
    </dl>
    ${table(
      'Stripe sync per closed month',
      ['Month', 'Statements', 'Pending', 'Failing', 'Synced', 'Paid', 'Payment failed', 'Skipped'],
      all.months.map((m) => [
        m.month,
        m.statements,
        m.pending,
        m.failed === 0 ? '0' : html`<span class="badge warn">${m.failed}</span>`,
        m.synced,
        m.states.paid,
        m.states.payment_failed,
        m.skipped,
      ]),
      'No month has been closed yet.',
    )}
    ${table(
      'Failing Stripe syncs (retried with backoff)',
      ['Statement', 'Account', 'Month', 'Attempts', 'Last error', 'Next attempt'],
      failing.statements.map((r) => [
        r.statement_id,
        r.account_id,
        r.month,
        r.attempts,
        r.last_error ?? '—',
        when(r.next_attempt_at),
      ]),
      'No failing syncs.',
    )}
    ${table(
      `Stripe sync by statement${all.next_cursor === null ? '' : ' (first 50)'}`,
      ['Statement', 'Month', 'Total', 'Status', 'Stripe invoice', 'Stripe customer'],
      all.statements.map((r) => [
        r.statement_id,
        r.month,
        usd(r.total_usd_micros),
        html`<span class="${SYNC_BADGE[r.status]}">${r.status}</span>
          <span class="muted">(${r.state})</span>`,
        r.stripe_invoice_id ?? '—',
        r.stripe_customer_id ?? '—',
      ]),
      'No statements in the last closed months.',
    )}
  </section>`;
}

/** A nested status document as a definition list; `…_wei` fields read as ETH. */
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
    if (/_wei$/.test(path) && typeof value === 'string' && /^\d+$/.test(value)) {
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

interface SenderJson {
  address: string;
  deposit_wei: string;
  reserve_wei: string;
  withdraw_round: string;
  unlock_in_progress: boolean;
}

interface FundingTx {
  id: string;
  kind: string;
  origin: string;
  status: string;
  deposit_wei: string;
  reserve_wei: string;
  value_wei: string;
  tx_hash: string | null;
  block_number: string | null;
  created_at: string;
  error: string | null;
}

interface FundingPage {
  transactions: FundingTx[];
  next_cursor: string | null;
}

// Rows of the funding journal per page: a screenful; older ones are a link away.
const FUNDING_PAGE = 25;

interface SignerStatus {
  enabled: boolean;
  reason: string | null;
  address: string | null;
  beneficiary: string | null;
  chain_id: string | null;
  rpc: { state: string; last_error: string | null; last_success_at: string | null } | null;
  chain: {
    block_number: string;
    eth_wei: string;
    current_round: string;
    sender: SenderJson;
  } | null;
  funding: {
    policy: {
      target_deposit_wei: string;
      target_reserve_wei: string;
      refill_threshold_percent: number;
      max_per_tx_wei: string;
      max_per_day_wei: string;
    } | null;
    gas_reserve_wei: string;
    spent_last_day_wei: string;
    last_run: { state: string; message: string; at: string };
    last_transaction: FundingTx | null;
  } | null;
  warnings: string[];
}

/** "0.8 ETH (target 1 ETH, refilled below 0.5 ETH)" */
function againstTarget(
  valueWei: string,
  targetWei: string | undefined,
  percent: number | undefined,
) {
  if (targetWei === undefined || percent === undefined) return eth(valueWei);
  const floor = (BigInt(targetWei) * BigInt(percent)) / 100n;
  const low = BigInt(valueWei) < floor;
  return html`${eth(valueWei)}
    <span class="muted">(target ${eth(targetWei)}, refilled below ${eth(floor)})</span>${
      low ? html` <span class="badge warn">below its floor</span>` : ''
    }`;
}

function signerBody(s: SignerStatus, funding: FundingPage, older: boolean): Html {
  const policy = s.funding?.policy ?? undefined;
  const sender = s.chain?.sender;
  return html`${
      s.enabled
        ? notice('success', 'The signer is enabled.')
        : notice('warning', `The signer is disabled${s.reason === null ? '' : `: ${s.reason}`}.`)
    }
    ${
      // A disabled signer's one warning is the notice above: said once.
      !s.enabled || s.warnings.length === 0
        ? ''
        : html`<section class="card" aria-labelledby="warn">
            <h2 id="warn">Needs attention</h2>
            <ul>
              ${s.warnings.map((w) => html`<li>${w}</li>`)}
            </ul>
          </section>`
    }
    <div class="cards">
      <section class="card" aria-labelledby="sg-account">
        <h2 id="sg-account">Account</h2>
        <dl class="facts">
          <dt>Address</dt>
          <dd id="signer-address">${s.address ?? '—'}</dd>
          <dt>ETH</dt>
          <dd id="signer-eth">${s.chain === null ? '—' : eth(s.chain.eth_wei)}</dd>
          <dt>Gas reserve</dt>
          <dd>${s.funding === null ? '—' : eth(s.funding.gas_reserve_wei)}</dd>
          <dt>Chain</dt>
          <dd>
            ${s.chain_id ?? '—'}${s.chain === null ? '' : `, block ${s.chain.block_number}, round ${s.chain.current_round}`}
          </dd>
          <dt>RPC</dt>
          <dd>
            ${s.rpc === null ? '—' : s.rpc.state}${s.rpc?.last_error ? ` (${s.rpc.last_error})` : ''}
          </dd>
        </dl>
      </section>
      <section class="card" aria-labelledby="sg-broker">
        <h2 id="sg-broker">TicketBroker</h2>
        <dl class="facts">
          <dt>Deposit</dt>
          <dd id="signer-deposit">
            ${sender === undefined ? '—' : againstTarget(sender.deposit_wei, policy?.target_deposit_wei, policy?.refill_threshold_percent)}
          </dd>
          <dt>Reserve</dt>
          <dd id="signer-reserve">
            ${sender === undefined ? '—' : againstTarget(sender.reserve_wei, policy?.target_reserve_wei, policy?.refill_threshold_percent)}
          </dd>
          <dt>Unlock</dt>
          <dd>
            ${sender === undefined ? '—' : sender.unlock_in_progress ? `in progress, withdrawable in round ${sender.withdraw_round}` : 'locked (not unlocking)'}
          </dd>
        </dl>
      </section>
      <section class="card" aria-labelledby="sg-funding">
        <h2 id="sg-funding">Funding</h2>
        <dl class="facts">
          <dt>Policy</dt>
          <dd>
            ${policy === undefined ? 'no automatic funding' : `refill below ${policy.refill_threshold_percent}% of target`}
          </dd>
          <dt>Last run</dt>
          <dd>
            ${s.funding === null ? '—' : html`${s.funding.last_run.state}: ${s.funding.last_run.message} (${when(s.funding.last_run.at)})`}
          </dd>
          <dt>Spent, last 24 h</dt>
          <dd>
            ${s.funding === null ? '—' : html`${eth(s.funding.spent_last_day_wei)}${policy === undefined ? '' : html` of ${eth(policy.max_per_day_wei)}`}`}
          </dd>
        </dl>
      </section>
    </div>
    <section class="card" aria-labelledby="sg-history">
      <h2 id="sg-history">Funding history</h2>
      ${table(
        `Funding transactions, newest first${older ? ' (older page)' : ''}`,
        ['When', 'Kind', 'Origin', 'Status', 'Deposit', 'Reserve', 'Value', 'Transaction'],
        funding.transactions.map((t) => [
          when(t.created_at),
          t.kind,
          t.origin,
          t.status === 'failed'
            ? html`<span class="badge warn">failed</span
                >${t.error === null ? '' : html` <span class="muted">${t.error}</span>`}`
            : t.status,
          eth(t.deposit_wei),
          eth(t.reserve_wei),
          eth(t.value_wei),
          t.tx_hash === null
            ? '—'
            : html`<code>${t.tx_hash}</code
                >${t.block_number === null ? '' : html` <span class="muted">(block ${t.block_number})</span>`}`,
        ]),
        older ? 'No older funding transactions.' : 'No funding transactions yet.',
      )}
      ${
        older || funding.next_cursor !== null
          ? html`<p>
              ${older ? html`<a href="/console/admin/signer">Newest transactions</a>` : ''}
              ${
                funding.next_cursor === null
                  ? ''
                  : html`<a href="/console/admin/signer?funding_cursor=${funding.next_cursor}"
                      >Older transactions</a
                    >`
              }
            </p>`
          : ''
      }
    </section>`;
}

const OPERATIONS = ['fund', 'fund-for', 'unlock', 'cancel-unlock', 'withdraw'] as const;
type Operation = (typeof OPERATIONS)[number];
const isOperation = (value: string): value is Operation =>
  (OPERATIONS as readonly string[]).includes(value);

const OPERATION_LABELS: Record<Operation, string> = {
  fund: 'Fund the deposit and reserve',
  'fund-for': 'Fund another account',
  unlock: 'Unlock',
  'cancel-unlock': 'Cancel the unlock',
  withdraw: 'Withdraw',
};

interface OperationPreview {
  operation: string;
  from: string;
  beneficiary: string;
  deposit_wei: string;
  reserve_wei: string;
  value_wei: string;
  gas: { limit: string; price_wei: string; cost_wei: string };
  eth_wei: string;
  caps: Array<{
    name: string;
    limit_wei: string;
    after_wei: string;
    ok: boolean;
    explanation: string;
  }>;
  notes: string[];
  confirmation_token: string;
  expires_at: string;
}

/** "0.5" ETH → wei as a decimal string; '' is 0; null when it is not an amount. */
function weiOf(text: string): string | null {
  if (text === '') return '0';
  if (!/^\d{1,60}(\.\d{1,18})?$/.test(text)) return null;
  return parseEther(text).toString();
}

/** The API's refusals keep their status (409 is a state the operator can change); 5xx → 503. */
function refusedStatus(response: ApiResponse): number {
  return response.status >= 500 ? 503 : response.status;
}

/** "0.01 ETH (10000000000000000 wei)": both, since caps and gas are set in wei. */
function ethAndWei(wei: string): string {
  return `${formatEther(BigInt(wei))} ETH (${wei} wei)`;
}

function signerActions(viewer: Viewer, s: SignerStatus): Html {
  const policy = s.funding?.policy ?? null;
  const sender = s.chain?.sender;
  const caps = html`<ul class="hint" id="signer-caps">
    ${
      policy === null
        ? html`<li>
            No per-transaction or daily cap: automatic funding is off (set the SIGNER_TARGET_*
            settings to have them).
          </li>`
        : html`<li>
              One transaction sends at most ${eth(policy.max_per_tx_wei)} (SIGNER_MAX_PER_TX_WEI).
            </li>
            <li>
              Funding sends at most ${eth(policy.max_per_day_wei)} in any 24 hours
              (SIGNER_MAX_PER_DAY_WEI), automatic and manual together;
              ${s.funding === null ? '' : eth(s.funding.spent_last_day_wei)} sent so far.
            </li>`
    }
    ${
      s.funding === null
        ? ''
        : html`<li>
            ${eth(s.funding.gas_reserve_wei)} of ETH always stays for gas (SIGNER_GAS_RESERVE_WEI).
          </li>`
    }
  </ul>`;
  const amounts = (prefix: string) =>
    html`<label for="${prefix}-deposit">Deposit (ETH)</label>
      <input
        id="${prefix}-deposit"
        name="deposit_eth"
        type="text"
        inputmode="decimal"
        placeholder="0.5"
      />
      <label for="${prefix}-reserve">Reserve (ETH)</label>
      <input
        id="${prefix}-reserve"
        name="reserve_eth"
        type="text"
        inputmode="decimal"
        placeholder="0.25"
      />`;
  const simple = (op: Operation, why: string, enabled: boolean) =>
    html`<form method="post" action="/console/admin/signer/preview">
      ${csrfField(viewer)}
      <input type="hidden" name="operation" value="${op}" />
      <p class="hint">${why}</p>
      <button type="submit" class="secondary" ${enabled ? '' : 'disabled'}>
        ${OPERATION_LABELS[op]}…
      </button>
    </form>`;
  const unlocking = sender?.unlock_in_progress === true;
  const held = sender !== undefined && BigInt(sender.deposit_wei) + BigInt(sender.reserve_wei) > 0n;
  return html`<section class="card" aria-labelledby="sg-act">
    <h2 id="sg-act">Act</h2>
    <p>
      Each action shows its amounts, estimated gas and the caps first; nothing is sent until you
      confirm. Every transaction lands in the funding history below and in the audit log.
    </p>
    <div class="cards">
      <section aria-labelledby="act-fund">
        <h3 id="act-fund">Fund</h3>
        <form method="post" action="/console/admin/signer/preview">
          ${csrfField(viewer)}
          <input type="hidden" name="operation" value="fund" />
          ${amounts('fund')}
          <button type="submit">Preview funding…</button>
        </form>
        ${caps}
      </section>
      <section aria-labelledby="act-fund-for">
        <h3 id="act-fund-for">Fund another account</h3>
        <form method="post" action="/console/admin/signer/preview">
          ${csrfField(viewer)}
          <input type="hidden" name="operation" value="fund-for" />
          <label for="fund-for-beneficiary">Account (0x address)</label>
          <input
            id="fund-for-beneficiary"
            name="beneficiary"
            type="text"
            required
            pattern="0x[0-9a-fA-F]{40}"
            autocomplete="off"
          />
          <p class="hint">
            fundDepositAndReserveFor: credits that account's deposit and reserve (a self-keyed
            go-livepeer gateway), paid from the signer's ETH. The same caps apply.
          </p>
          ${amounts('fund-for')}
          <button type="submit">Preview funding…</button>
        </form>
      </section>
      <section aria-labelledby="act-unlock">
        <h3 id="act-unlock">Unlock and withdraw</h3>
        ${
          unlocking
            ? html`${simple('withdraw', `Withdrawable from round ${sender?.withdraw_round}: the deposit and reserve go back to the signer.`, true)}
              ${simple('cancel-unlock', 'Keep the deposit and reserve locked, for tickets again.', true)}`
            : simple(
                'unlock',
                'Starts the unlock period; tickets stop being accepted by orchestrators meanwhile.',
                held,
              )
        }
      </section>
    </div>
  </section>`;
}

function confirmBody(viewer: Viewer, op: Operation, p: OperationPreview): Html {
  const funds = p.operation === 'fund';
  return html`<section class="card" aria-labelledby="confirm-h">
    <h2 id="confirm-h">Confirm: ${OPERATION_LABELS[op]}</h2>
    <p>Nothing has been sent yet. Check the figures, then confirm before ${when(p.expires_at)}.</p>
    <dl class="facts" id="signer-preview">
      <dt>From</dt>
      <dd>${p.from}</dd>
      ${
        funds
          ? html`<dt>Credited account</dt>
              <dd id="preview-beneficiary">${p.beneficiary}</dd>
              <dt>Deposit</dt>
              <dd id="preview-deposit">${ethAndWei(p.deposit_wei)}</dd>
              <dt>Reserve</dt>
              <dd id="preview-reserve">${ethAndWei(p.reserve_wei)}</dd>
              <dt>Sent with the call</dt>
              <dd id="preview-value">${ethAndWei(p.value_wei)}</dd>`
          : ''
      }
      <dt>Estimated gas</dt>
      <dd id="preview-gas">
        ${p.gas.limit} gas at up to ${p.gas.price_wei} wei: at most ${ethAndWei(p.gas.cost_wei)}
      </dd>
      <dt>Signer's ETH now</dt>
      <dd>${ethAndWei(p.eth_wei)}</dd>
    </dl>
    ${
      p.caps.length === 0
        ? html`<p class="hint">No funding cap applies to this operation (it moves no ETH).</p>`
        : table(
            'Caps that apply',
            ['Cap', 'Limit', 'After this', 'Within'],
            p.caps.map((c) => [
              c.explanation,
              eth(c.limit_wei),
              eth(c.after_wei),
              c.ok ? 'yes' : 'no',
            ]),
          )
    }
    ${
      p.notes.length === 0
        ? ''
        : html`<ul>
            ${p.notes.map((n) => html`<li>${n}</li>`)}
          </ul>`
    }
    <form method="post" action="/console/admin/signer/confirm">
      ${csrfField(viewer)}
      <input type="hidden" name="operation" value="${op}" />
      <input type="hidden" name="confirmation_token" value="${p.confirmation_token}" />
      <button type="submit" class="danger">Confirm and send</button>
      <a class="button secondary" href="/console/admin/signer">Cancel</a>
    </form>
  </section>`;
}

interface WebhookHealth {
  unfanned_events: number;
  pending_deliveries: number;
  oldest_pending_at: string | null;
  failing_endpoints: number;
  disabled_endpoints: number;
}

interface Endpoint {
  id: string;
  account_id: string | null;
  url: string;
  enabled: boolean;
  disabled_reason: string | null;
  consecutive_failures: number;
  failing_since: string | null;
}

interface RechargeRow {
  account_id: string;
  amount_usd_micros: string;
  state: 'pending' | 'succeeded' | 'failed';
  attempts: number;
  last_error: string | null;
  next_attempt_at: string | null;
  created_at: string;
}

/** Webhook backlog and the endpoints that fail or were disabled, across the deployment. */
function webhookHealth(h: WebhookHealth, endpoints: Endpoint[]): Html {
  const troubled = endpoints.filter((e) => !e.enabled || e.consecutive_failures > 0);
  return html`<section class="card" aria-labelledby="h-webhooks">
    <h2 id="h-webhooks">Webhooks</h2>
    <dl class="facts">
      <dt>Pending deliveries</dt>
      <dd id="webhook-pending">${h.pending_deliveries}</dd>
      <dt>Oldest pending</dt>
      <dd>${when(h.oldest_pending_at)}</dd>
      <dt>Events not yet fanned out</dt>
      <dd>${h.unfanned_events}</dd>
      <dt>Failing endpoints</dt>
      <dd id="webhook-failing">${h.failing_endpoints}</dd>
      <dt>Disabled endpoints</dt>
      <dd id="webhook-disabled">${h.disabled_endpoints}</dd>
    </dl>
    ${table(
      'Failing and disabled webhook endpoints',
      ['Endpoint', 'Account', 'State', 'Failing since'],
      troubled.map((e) => [
        html`<a href="/console/webhooks/${e.id}">${e.url}</a>`,
        e.account_id ?? 'deployment',
        e.enabled
          ? html`<span class="badge warn">failing (${e.consecutive_failures} in a row)</span>`
          : html`<span class="badge bad">disabled</span
              >${e.disabled_reason === null ? '' : html` ${e.disabled_reason}`}`,
        when(e.failing_since),
      ]),
      'Every endpoint is healthy.',
    )}
  </section>`;
}

/** Auto-recharges that failed or are waiting to be retried, across accounts. */
function rechargeFailures(rows: RechargeRow[]): Html {
  const troubled = rows.filter((r) => r.state === 'failed' || r.last_error !== null);
  return html`<section class="card" aria-labelledby="h-recharges">
    <h2 id="h-recharges">Auto-recharge failures</h2>
    ${table(
      'Failed and retrying auto-recharges, newest first',
      ['Account', 'Amount', 'State', 'Attempts', 'Error', 'Next try'],
      troubled.map((r) => [
        html`<a href="/console/balance?account=${r.account_id}">${r.account_id}</a>`,
        usd(r.amount_usd_micros),
        html`<span class="badge ${r.state === 'failed' ? 'bad' : 'warn'}">${r.state}</span>`,
        r.attempts,
        r.last_error ?? '',
        r.next_attempt_at === null ? '' : when(r.next_attempt_at),
      ]),
      'No failed auto-recharge.',
    )}
  </section>`;
}
