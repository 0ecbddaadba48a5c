// The console's request plumbing: session lookup, security headers, the CSRF and Origin checks
// on every POST, form parsing, calls to /v1 with the session's token, and the one place where
// console errors become HTML pages.
import coBody from 'co-body';
import type { Context } from 'koa';
import { collectPages } from '../platform/cursor.ts';
import { setPageHeaders } from '../platform/html.ts';
import type { Router } from '../platform/http.ts';
import type { RequestState } from '../platform/http.ts';
import { findUncleanString } from '../platform/strings.ts';
import type { ApiClient, ApiResponse } from './api.ts';
import { ApiRefused, FormRejected, SignInRequired } from './errors.ts';
import { html } from '../platform/html.ts';
import type { Html } from '../platform/html.ts';
import { csrfMatches } from './session.ts';
import type { ConsoleSession, SessionStore } from './session.ts';
import { layout, notice } from './views.ts';
import type { Viewer } from './views.ts';
import type { Clock } from '../platform/clock.ts';

// No inline script or style anywhere, nothing from another origin, and the console cannot be
// framed (clickjacking a "Revoke" button).
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "object-src 'none'",
].join('; ');

// Console forms are small (a key's origins and resources at most); anything larger is refused.
const FORM_LIMIT = '64kb';

export type Form = Record<string, string | string[]>;

export interface PageResult {
  title: string;
  active: string;
  body: Html;
  status?: number;
}

export interface PageContext {
  ctx: Context;
  session: ConsoleSession;
  viewer: Viewer;
  /** Calls /v1 as the signed-in user. A 401 means the session is over (sign in again). */
  api(method: string, path: string, body?: unknown): Promise<ApiResponse>;
  /** The app's clock: "this month" and "the last 30 days" are read from it. */
  clock: Clock;
}

export interface ActionContext extends PageContext {
  form: Form;
}

export interface FrameworkDeps {
  sessions: SessionStore;
  api: ApiClient;
  /** The origin browsers use (from PUBLIC_URL): POSTs must come from it. */
  origin: string;
  clock: Clock;
}

export function securityHeaders(ctx: Context): void {
  setPageHeaders(ctx, CONTENT_SECURITY_POLICY);
}

export function createFramework(router: Router, deps: FrameworkDeps) {
  const { sessions, api } = deps;

  function pageContext(ctx: Context, session: ConsoleSession): PageContext {
    return {
      ctx,
      session,
      clock: deps.clock,
      viewer: viewerOf(session)!,
      async api(method, path, body) {
        const response = await api.call(session.accessToken, method, path, body, {
          'x-request-id': (ctx.state as RequestState).requestId,
        });
        if (response.status === 401) throw new SignInRequired();
        return response;
      },
    };
  }

  function render(ctx: Context, viewer: Viewer | null, result: PageResult): void {
    ctx.status = result.status ?? 200;
    ctx.type = 'html';
    ctx.body = layout({ ...result, viewer }).value;
  }

  async function run(ctx: Context, work: () => Promise<void>, viewer: () => Viewer | null) {
    securityHeaders(ctx);
    ctx.set('Cache-Control', 'no-store');
    try {
      await work();
    } catch (error) {
      if (error instanceof SignInRequired) {
        // A form posted after the session ended is not replayed: the user signs in and
        // starts again from the page it came from.
        const back = ctx.method === 'GET' ? ctx.url : ctx.path;
        ctx.status = 303;
        ctx.redirect(`/console/login?return_to=${encodeURIComponent(back)}`);
        return;
      }
      if (error instanceof FormRejected || error instanceof ApiRefused) {
        (ctx.state as RequestState).log.info({ error: error.code }, error.message);
        render(ctx, viewer(), {
          title: error instanceof FormRejected ? 'Form not accepted' : 'Not available',
          active: '',
          status: error.status,
          body: html`${notice('error', error.message)}
            <p><a href="/console">Back to the console</a></p>`,
        });
        return;
      }
      // co-body's errors for a body that is too large or malformed carry a 4xx status.
      const status = (error as { status?: unknown }).status;
      if (typeof status === 'number' && status >= 400 && status < 500) {
        (ctx.state as RequestState).log.info({ status }, 'console form refused');
        render(ctx, viewer(), {
          title: 'Form not accepted',
          active: '',
          status,
          body: notice(
            'error',
            status === 413 ? 'The form is too large.' : 'The form could not be read.',
          ),
        });
        return;
      }
      (ctx.state as RequestState).log.error({ err: error }, 'console page failed');
      render(ctx, viewer(), {
        title: 'Something went wrong',
        active: '',
        status: 500,
        body: notice(
          'error',
          `Something went wrong on our side. Quote request id ${(ctx.state as RequestState).requestId} when reporting it.`,
        ),
      });
    }
  }

  /** A GET page; without a session, a redirect to sign-in that comes back here. */
  function page(
    path: string,
    handler: (pc: PageContext) => Promise<PageResult | null>,
    options: { admin?: boolean } = {},
  ): void {
    router.get(path, async function consolePage(ctx) {
      let session: ConsoleSession | null = null;
      await run(
        ctx,
        async () => {
          session = await sessions.load(ctx);
          if (session === null) throw new SignInRequired();
          if (options.admin === true && !session.isAdmin) {
            throw new ApiRefused(
              403,
              'This page is for operators (accounts with the admin scope).',
            );
          }
          const result = await handler(pageContext(ctx, session));
          // null: the handler wrote the response itself (a download).
          if (result !== null) render(ctx, pageContext(ctx, session).viewer, result);
        },
        () => viewerOf(session),
      );
    });
  }

  /** A form POST: same-origin, signed in, and carrying the session's CSRF token. */
  function action(
    path: string,
    handler: (ac: ActionContext) => Promise<PageResult | { redirect: string }>,
    options: { admin?: boolean } = {},
  ): void {
    router.post(path, async function consoleAction(ctx) {
      let session: ConsoleSession | null = null;
      await run(
        ctx,
        async () => {
          checkOrigin(ctx, deps.origin);
          session = await sessions.load(ctx);
          if (session === null) throw new SignInRequired();
          const form = await readForm(ctx);
          if (!csrfMatches(session, form.csrf)) {
            throw new FormRejected(
              'The form could not be verified. Reload the page and try again.',
            );
          }
          if (options.admin === true && !session.isAdmin) {
            throw new ApiRefused(
              403,
              'This action is for operators (accounts with the admin scope).',
            );
          }
          const pc = pageContext(ctx, session);
          const result = await handler({ ...pc, form });
          if ('redirect' in result) {
            ctx.status = 303;
            ctx.redirect(result.redirect);
            return;
          }
          render(ctx, pc.viewer, result);
        },
        () => viewerOf(session),
      );
    });
  }

  return { page, action, render, run };
}

function viewerOf(session: ConsoleSession | null): Viewer | null {
  return session === null
    ? null
    : {
        email: session.email,
        isAdmin: session.isAdmin,
        csrfToken: session.csrfToken,
        getStarted: session.getStartedOpen && !session.isAdmin,
      };
}

/**
 * Browsers send Origin on every POST (Fetch standard); a POST without one, or from another
 * origin, did not come from a console page. Checked before anything else, so a cross-site form
 * learns nothing (not even whether the victim is signed in).
 */
function checkOrigin(ctx: Context, expected: string): void {
  const origin = ctx.get('origin');
  if (origin === '' || origin !== expected) {
    throw new FormRejected('This form was sent from another site, so it was not accepted.');
  }
}

async function readForm(ctx: Context): Promise<Form> {
  if (!ctx.request.is('application/x-www-form-urlencoded')) {
    throw new FormRejected('Send the form as application/x-www-form-urlencoded.');
  }
  // queryString.arrayLimit etc. are qs options; depth 0 keeps `a[b]=` a flat key, never an
  // object, so every value is a string or a list of strings.
  const parsed = (await coBody.form(ctx.req, {
    limit: FORM_LIMIT,
    queryString: { depth: 0, arrayLimit: 1000, parameterLimit: 200 },
  })) as Record<string, unknown>;
  // The string rule (platform/strings.ts), as for the API the form is passed on to.
  if (findUncleanString(parsed) !== null) {
    throw new FormRejected(
      'The form contains a NUL character or an unpaired surrogate, which no field accepts.',
      400,
    );
  }
  const form: Form = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value === 'string') form[key] = value;
    else if (Array.isArray(value))
      form[key] = value.filter((v): v is string => typeof v === 'string');
  }
  return form;
}

/** One text field (the first if repeated), trimmed; '' when absent. */
export function field(form: Form, name: string): string {
  const value = form[name];
  const first = Array.isArray(value) ? value[0] : value;
  return (first ?? '').trim();
}

/** Every value of a repeated field (checkboxes). */
export function fields(form: Form, name: string): string[] {
  const value = form[name];
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map((v) => v.trim()).filter(Boolean);
}

/**
 * A textarea with one entry per line, or comma-separated unless `commas` is false: a comma is
 * legal inside a URI (RFC 3986 sub-delims), so lists of redirect URIs split on newlines only.
 */
export function lines(form: Form, name: string, { commas = true } = {}): string[] {
  return field(form, name)
    .split(commas ? /[\n,]/ : /\n/)
    .map((v) => v.trim())
    .filter(Boolean);
}

/** The API's own message for a refused request (its `message`, or its OAuth description). */
export function apiMessage(response: ApiResponse): string {
  const body = response.body as { message?: unknown; error_description?: unknown } | undefined;
  if (typeof body?.message === 'string') return body.message;
  if (typeof body?.error_description === 'string') return body.error_description;
  return `The request failed (HTTP ${response.status}).`;
}

/** Throws ApiRefused unless the API answered 2xx. */
export function ok(response: ApiResponse): ApiResponse {
  if (response.status >= 200 && response.status < 300) return response;
  if (response.status >= 500) {
    throw new Error(`API answered ${response.status}: ${apiMessage(response)}`);
  }
  throw new ApiRefused(response.status, apiMessage(response));
}

// A console list shows at most this many rows at once; past it, the page links on.
export const CONSOLE_LIST_CAP = 500;

/**
 * Every row of a paged /v1 list (`path` answers `{ [field]: T[], next_cursor }`), following
 * cursors from the page's own `?cursor=` up to CONSOLE_LIST_CAP rows. `next` is where to go on
 * when the cap cut the list short (the page must link to it: no row is dropped silently).
 */
export async function listAll<T>(
  pc: PageContext,
  path: string,
  field: string,
): Promise<{ items: T[]; next: string | null }> {
  const start = typeof pc.ctx.query.cursor === 'string' ? pc.ctx.query.cursor : undefined;
  const all = await collectPages<T>(
    async (cursor, limit) => {
      const params = new URLSearchParams({ limit: String(limit) });
      if (cursor !== undefined) params.set('cursor', cursor);
      const body = ok(await pc.api('GET', `${path}?${params.toString()}`)).body as Record<
        string,
        unknown
      >;
      return { items: body[field] as T[], nextCursor: body.next_cursor as string | null };
    },
    CONSOLE_LIST_CAP,
    start,
  );
  return { items: all.items, next: all.nextCursor };
}
