// Shared pieces of every console page: the layout (landmarks, skip link, navigation), money
// and time formatting, notices. Pure: values in, `Html` out.
import { formatEther } from 'ethers';
import { html } from '../platform/html.ts';
import type { Html } from '../platform/html.ts';

export interface Viewer {
  email: string;
  isAdmin: boolean;
  csrfToken: string;
  /** Offer "Get started" in the navigation (a customer who has not finished its steps). */
  getStarted?: boolean;
}

const GET_STARTED_NAV = ['get-started', '/console/get-started', 'Get started'] as const;

const CUSTOMER_NAV = [
  ['overview', '/console', 'Overview'],
  ['keys', '/console/keys', 'API keys'],
  ['apps', '/console/apps', 'Apps'],
  ['usage', '/console/usage', 'Usage'],
  ['statements', '/console/statements', 'Statements'],
  ['balance', '/console/balance', 'Balance'],
  ['webhooks', '/console/webhooks', 'Webhooks'],
  ['account', '/console/account', 'Your account'],
] as const;

const OPERATOR_NAV = [
  ['accounts', '/console/admin/accounts', 'Accounts'],
  ['plans', '/console/admin/plans', 'Plans'],
  ['all-usage', '/console/admin/usage', 'All usage'],
  ['billing', '/console/admin/billing', 'Month close'],
  ['signer', '/console/admin/signer', 'Signer'],
  ['health', '/console/admin/health', 'Health'],
] as const;

function navList(items: readonly (readonly [string, string, string])[], active: string): Html {
  return html`<ul>
    ${items.map(
      ([id, href, label]) =>
        html`<li>
          <a href="${href}" ${id === active ? html` aria-current="page"` : ''}>${label}</a>
        </li>`,
    )}
  </ul>`;
}

export function layout(input: {
  title: string;
  active: string;
  viewer: Viewer | null;
  body: Html;
}): Html {
  const { viewer } = input;
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="same-origin" />
        <title>${input.title} · tollhouse console</title>
        <link rel="stylesheet" href="/console/static/console.css" />
        <script src="/console/static/console.js" defer></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <p class="brand"><a href="/console">tollhouse</a></p>
          ${
            viewer === null
              ? ''
              : html`<form method="post" action="/console/logout" class="signout">
                  <span>${viewer.email}</span>
                  ${csrfField(viewer)}
                  <button type="submit" class="secondary">Sign out</button>
                </form>`
          }
        </header>
        ${
          viewer === null
            ? ''
            : html`<nav aria-label="Console">
                <h2 class="navhead">Your account</h2>
                ${navList(
                  viewer.getStarted === true ? [GET_STARTED_NAV, ...CUSTOMER_NAV] : CUSTOMER_NAV,
                  input.active,
                )}
                ${
                  viewer.isAdmin
                    ? html`<h2 class="navhead">Operator</h2>
                        ${navList(OPERATOR_NAV, input.active)}`
                    : ''
                }
              </nav>`
        }
        <main id="main" tabindex="-1">
          <h1>${input.title}</h1>
          ${input.body}
        </main>
      </body>
    </html> `;
}

export function csrfField(viewer: Viewer): Html {
  return html`<input type="hidden" name="csrf" value="${viewer.csrfToken}" />`;
}

export function notice(kind: 'error' | 'success' | 'warning', message: string | null): Html {
  if (message === null) return html``;
  const role = kind === 'error' ? 'alert' : 'status';
  return html`<p class="notice ${kind}" role="${role}">${message}</p>`;
}

/** Micro-dollars (decimal string or bigint) as dollars: `$12.50`, `-$0.000125`. */
export function usd(micros: string | bigint): string {
  const value = typeof micros === 'bigint' ? micros : BigInt(micros);
  const sign = value < 0n ? '-' : '';
  const abs = value < 0n ? -value : value;
  const dollars = abs / 1_000_000n;
  const fraction = (abs % 1_000_000n).toString().padStart(6, '0');
  // Cents always; further digits only when they are not zero (usage is priced finely).
  const trimmed = fraction.replace(/0+$/, '').padEnd(2, '0');
  return `${sign}$${dollars.toLocaleString('en-US')}.${trimmed}`;
}

/** Wei (decimal string or bigint) as ETH. */
export function eth(wei: string | bigint): string {
  return `${formatEther(typeof wei === 'bigint' ? wei : BigInt(wei))} ETH`;
}

export function when(iso: string | null): Html {
  if (iso === null) return html`<span class="muted">never</span>`;
  const date = new Date(iso);
  return html`<time datetime="${date.toISOString()}"
    >${date.toISOString().slice(0, 16).replace('T', ' ')} UTC</time
  >`;
}

/** A `<table>` with a caption and header row; cells are already `Html` or text. */
export function table(
  caption: string,
  headers: string[],
  rows: Array<Array<Html | string | number>>,
  empty = 'Nothing yet.',
): Html {
  if (rows.length === 0) return html`<p class="muted">${empty}</p>`;
  return html`<div class="scroll" role="region" aria-label="${caption}" tabindex="0">
    <table>
      <caption>
        ${caption}
      </caption>
      <thead>
        <tr>
          ${headers.map((h) => html`<th scope="col">${h}</th>`)}
        </tr>
      </thead>
      <tbody>
        ${rows.map(
          (r) =>
            html`<tr>
              ${r.map((c) => html`<td>${c}</td>`)}
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

/** The `scopes` checkboxes of a form: one per offered scope, the selected ones ticked. */
export function scopeChoices(
  legend: string,
  offered: readonly string[],
  selected: readonly string[],
  hint: string,
): Html {
  return html`<fieldset>
    <legend>${legend}</legend>
    ${offered.map(
      (s) =>
        html`<label
          ><input
            type="checkbox"
            name="scopes"
            value="${s}"
            ${selected.includes(s) ? html` checked` : ''}
          />
          ${s}</label
        >`,
    )}
    <p class="hint">${hint}</p>
  </fieldset>`;
}

// Grace periods offered when rotating a key's or an app's secret: the old secret keeps working
// this long, so whatever uses it can be redeployed with the new one.
const GRACE_CHOICES = [
  [0, 'Stop the old secret now'],
  [3600, '1 hour'],
  [86_400, '1 day'],
  [7 * 86_400, '7 days'],
] as const;

/** The grace period a rotate form chose, or null when it is not one of the offered choices. */
export function graceSeconds(text: string): number | null {
  // Number('') is 0 ("stop now"): an empty field must not silently mean the harshest choice.
  const grace = /^\d{1,7}$/.test(text) ? Number(text) : NaN;
  return GRACE_CHOICES.some(([seconds]) => seconds === grace) ? grace : null;
}

/** The labelled grace-period select of a rotate form (one day preselected). */
export function graceSelect(id: string): Html {
  return html`<label for="${id}" class="hint">Old secret keeps working</label>
    <select id="${id}" name="grace_seconds">
      ${GRACE_CHOICES.map(([seconds, label]) => html`<option value="${seconds}" ${seconds === 86_400 ? html` selected` : ''}>${label}</option>`)}
    </select>`;
}

/** A secret shown once, with the copy button the console script enables. */
export function secretReveal(secret: string, what: string): Html {
  return html`<p role="status">
      Copy the ${what} now: it is shown only once and tollhouse keeps only a hash of it.
    </p>
    <div class="secret">
      <code id="new-secret">${secret}</code>
      <button type="button" class="secondary small" data-copy="new-secret" hidden>Copy</button>
      <span id="new-secret-status" role="status"></span>
    </div>`;
}

/** The confirmation named by a redirect's `?done=` parameter, if it names one of `messages`. */
export function doneMessage(
  query: { done?: unknown },
  messages: Record<string, string>,
): string | null {
  return typeof query.done === 'string' ? (messages[query.done] ?? null) : null;
}

/** The link on from a list the console cut short (see listAll), or nothing. */
export function nextPageLink(path: string, next: string | null, what: string): Html | string {
  if (next === null) return '';
  return html`<p><a href="${path}?cursor=${encodeURIComponent(next)}">More ${what} →</a></p>`;
}
