// What every server-rendered identity page (sign-in, second factor, upstream, onboarding,
// first run) does the same way: how a page is sent, how its form is read, how a failed CSRF
// check and an exhausted per-IP limit are answered. Kept in one place so the pages cannot
// drift apart on a security detail (the headers, the string rule, the 403 page).
import coBody from 'co-body';
import type { Context } from 'koa';
import type { Csrf } from '../platform/csrf.ts';
import { InvalidRequest } from '../platform/errors.ts';
import { setPageHeaders } from '../platform/html.ts';
import { findUncleanString, uncleanStringMessage } from '../platform/strings.ts';
import { SIGN_IN_CONTENT_SECURITY_POLICY, errorPage } from './pages.ts';
import type { RateLimiter } from './rate-limit.ts';

/** The largest form body any identity page takes. */
export const FORM_LIMIT = '16kb';

/** Sends an HTML page: never cached, with the sign-in pages' security headers. */
export function sendPage(ctx: Context, status: number, body: string): void {
  ctx.set('Cache-Control', 'no-store');
  setPageHeaders(ctx, SIGN_IN_CONTENT_SECURITY_POLICY);
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = body;
}

/**
 * The posted form's single text fields. Anything but a form reads as an empty one (so it
 * fails the CSRF check like a form without the field); a repeated field (an array) counts as
 * absent; a NUL or other unclean string is a 400 (platform/strings.ts), not a query error.
 */
export async function readPageForm(ctx: Context): Promise<Record<string, string>> {
  if (!ctx.request.is('application/x-www-form-urlencoded')) return {};
  const raw = (await coBody.form(ctx.req, { limit: FORM_LIMIT })) as Record<string, unknown>;
  const unclean = findUncleanString(raw);
  if (unclean !== null) throw new InvalidRequest(uncleanStringMessage('body', unclean));
  const fields: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (typeof value === 'string') fields[name] = value;
  }
  return fields;
}

/** Answers the 403 page for a form whose CSRF token does not match the browser's cookie. */
export function refuseUnverifiedForm(ctx: Context): void {
  sendPage(
    ctx,
    403,
    errorPage('The form could not be verified', 'Reload the page and submit it again.'),
  );
}

/** The posted form once its CSRF token checks out; null after answering 403 when it does not. */
export async function readVerifiedForm(
  ctx: Context,
  csrf: Csrf,
): Promise<Record<string, string> | null> {
  const form = await readPageForm(ctx);
  if (csrf.valid(ctx, form.csrf)) return form;
  refuseUnverifiedForm(ctx);
  return null;
}

/**
 * Counts one hit on each limiter; when any is over, sets `Retry-After` (the longest wait) and
 * returns false, leaving the 429 page to the caller (each flow words it for its own users).
 */
export function withinLimits(ctx: Context, limits: Array<[RateLimiter, string]>): boolean {
  const wait = Math.max(0, ...limits.map(([limiter, key]) => limiter.hit(key)));
  if (wait <= 0) return true;
  ctx.set('Retry-After', String(wait));
  return false;
}
