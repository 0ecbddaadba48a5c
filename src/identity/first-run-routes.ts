// The /setup page (first run, issue #18 item 6): like the onboarding pages — no-store, the
// sign-in pages' CSP and headers, a double-submit CSRF token, the string rule on the form.
// Every refusal (no such link, used, expired, an operator already exists) is the same 404
// page, so the page tells a prober nothing.
import type { Context } from 'koa';
import { createCsrf } from '../platform/csrf.ts';
import { Conflict, InvalidRequest } from '../platform/errors.ts';
import type { Router } from '../platform/http.ts';
import { SETUP_PATH } from './first-run.ts';
import type { FirstRun } from './first-run.ts';
import { closedPage, donePage, setupPage } from './onboarding-pages.ts';
import { readVerifiedForm, sendPage, withinLimits } from './page-forms.ts';
import type { RateLimiter } from './rate-limit.ts';

const CSRF_COOKIE = 'tollhouse_setup_csrf';
const REFUSED =
  'This setup link does not work: it was used, it expired, or an operator already exists. ' +
  'Restarting the server prints a new link while no operator exists.';

export function firstRunRoutes(
  router: Router,
  deps: { firstRun: FirstRun; secureCookies: boolean; perIp: RateLimiter },
): void {
  const { firstRun } = deps;
  const csrf = createCsrf({ cookie: CSRF_COOKIE, path: SETUP_PATH, secure: deps.secureCookies });

  const refused = (ctx: Context) =>
    sendPage(ctx, 404, closedPage('This link does not work', REFUSED));

  function render(
    ctx: Context,
    status: number,
    token: string,
    form: { email: string; name: string },
    error: string | null,
  ) {
    sendPage(
      ctx,
      status,
      setupPage({ action: SETUP_PATH, csrf: csrf.token(ctx), token, ...form, error }),
    );
  }

  router.get(SETUP_PATH, async function showSetup(ctx) {
    const token = ctx.query.token;
    if (!firstRun.accepts(token) || (await firstRun.operatorExists())) return refused(ctx);
    render(ctx, 200, token, { email: '', name: '' }, null);
  });

  router.post(SETUP_PATH, async function submitSetup(ctx) {
    if (!ctx.request.is('application/x-www-form-urlencoded')) return refused(ctx);
    const form = await readVerifiedForm(ctx, csrf);
    if (form === null) return;
    if (!withinLimits(ctx, [[deps.perIp, ctx.ip]])) {
      return sendPage(
        ctx,
        429,
        closedPage('Too many attempts', 'Too many attempts from here. Wait a while.'),
      );
    }
    const token = form.token ?? '';
    if (!firstRun.accepts(token) || (await firstRun.operatorExists())) return refused(ctx);
    const values = {
      email: (form.email ?? '').slice(0, 320),
      name: (form.name ?? '').slice(0, 200),
    };
    if ((form.password ?? '') !== (form.password_confirm ?? '')) {
      return render(ctx, 400, token, values, 'The two passwords are not the same.');
    }
    let account;
    try {
      account = await firstRun.createOperator(token, {
        email: values.email,
        name: values.name === '' ? null : values.name,
        password: form.password ?? '',
      });
    } catch (error) {
      if (error instanceof InvalidRequest || error instanceof Conflict) {
        return render(ctx, error.status, token, values, error.message);
      }
      throw error;
    }
    if (account === null) return refused(ctx);
    sendPage(
      ctx,
      200,
      donePage(
        'Operator created',
        `${account.email} is this tollhouse's first operator. Sign in to the console with it.`,
        '/console',
      ),
    );
  });
}
