// Who may call what. Every REST route declares its `Access` — the principal kinds it is open
// to, the scope it needs, and whose ids it may touch — and `defineRoute` (or `guardedRoute`
// for the few routes that stream) enforces it before input reaches the handler. The
// declarations are kept on the router, so the authorization table in the docs and the
// matrix test read the same data the guard enforces.
import type { Context, Middleware } from 'koa';
import type KoaRouter from '@koa/router';
import type { Authenticator, AuthState, Principal, Scope } from './auth.ts';
import { hasScope, ruleFailed } from './auth.ts';
import { NotFound } from './errors.ts';
import type { RequestState } from './request-state.ts';

/**
 * The kinds of caller, named once. Exactly one applies to a principal (`principalKind`).
 * - operator: holds the `admin` scope (an operator's key, console session or machine client)
 * - account: a backend key, or an access token an account obtained for itself (the console)
 * - app_client: an OIDC app's own token (client credentials, or an app signed in for an account)
 * - app_end_user: a token an app obtained by token exchange for one of its end users
 * - browser_key: a browser key (`th_ck_…`), public by design
 * - derived: an access token made from an API key by token exchange
 */
export const PRINCIPAL_KINDS = [
  'operator',
  'account',
  'app_client',
  'app_end_user',
  'browser_key',
  'derived',
] as const;
export type PrincipalKind = (typeof PRINCIPAL_KINDS)[number];

export const KIND_LABELS: Record<PrincipalKind, string> = {
  operator: 'operator (admin scope)',
  account: 'account credential (backend key or own token)',
  app_client: "app client (an app's own token)",
  app_end_user: 'app end user (token exchanged for an app user)',
  browser_key: 'browser key',
  derived: 'derived credential (token exchanged from a key)',
};

/**
 * Browser and end-user credentials are the narrowest (they speak for a web page or for one
 * of an app's users, whatever scopes they carry) and are named first; `admin` then outranks
 * how the credential was obtained.
 */
export function principalKind(principal: Principal): PrincipalKind {
  if (principal.allowedOrigins !== null) return 'browser_key';
  if (principal.endUserId !== null) return 'app_end_user';
  if (hasScope(principal, 'admin')) return 'operator';
  if (principal.via === 'access_token' && principal.keyId !== null) return 'derived';
  if (principal.via === 'access_token' && principal.appId !== null) return 'app_client';
  return 'account';
}

/** Who owns the thing an id names, as far as authorization cares. */
export interface Owner {
  accountId: string;
}

/**
 * The rule for one id a route reads (a path parameter, a query parameter or a body field).
 * Operators may name any id; everyone else:
 * - own_account: the id is an account id and must be the caller's own (403 otherwise);
 *   with `find`, the id names a thing (a key, an app, a statement) that the caller's
 *   account must own — otherwise 404, so another account's ids are not confirmed to exist;
 * - own_app: the id is an app id and must be the caller's own app (an app client's, 403).
 */
export interface IdRule {
  rule: 'own_account' | 'own_app';
  /** What the id names, for messages and the docs (`key`, `app`, `statement`). */
  names: string;
  /** The owner of the named thing, or null when there is none (the handler answers 404). */
  find?: (id: string) => Promise<Owner | null>;
}

/** Where an id is read: `params.id`, `query.account_id`, `body.app_id`. */
export type IdLocation = `${'params' | 'query' | 'body'}.${string}`;

export interface Access {
  /** Who may call; `anyone` routes do their own authentication (or need none). */
  kinds: readonly PrincipalKind[] | 'anyone';
  /** The scope the credential must carry (`admin` satisfies any). */
  scope?: Scope;
  /** The ownership rule of every id the route touches. */
  ids?: Partial<Record<IdLocation, IdRule>>;
  /** Anything else the docs should say (rules the service applies per item). */
  note?: string;
}

export interface DeclaredRoute {
  method: string;
  /** Koa path (`/v1/keys/:id`). */
  path: string;
  access: Access;
}

interface Guard {
  authenticator: Authenticator | null;
  routes: DeclaredRoute[];
}

const GUARD = Symbol('tollhouse.route-guard');
type GuardedRouter = KoaRouter & { [GUARD]?: Guard };

/** Lets `router`'s routes authenticate callers (app.ts, once the authenticator exists). */
export function guardRouter(router: KoaRouter, authenticator: Authenticator): void {
  guardOf(router).authenticator = authenticator;
}

/** Every route registered on `router` with its declaration, in registration order. */
export function declaredRoutes(router: KoaRouter): readonly DeclaredRoute[] {
  return guardOf(router).routes;
}

function guardOf(router: KoaRouter): Guard {
  const guarded = router as GuardedRouter;
  return (guarded[GUARD] ??= { authenticator: null, routes: [] });
}

/**
 * Records the declaration and returns the middleware that authenticates and authorizes the
 * caller (none for `anyone`). Throws at registration when the declaration is missing: a route
 * without a rule never serves.
 */
export function declare(router: KoaRouter, route: DeclaredRoute): Middleware[] {
  const { access } = route;
  if ((access as Access | undefined)?.kinds === undefined) {
    throw new Error(`${route.method.toUpperCase()} ${route.path} declares no access rule`);
  }
  const guard = guardOf(router);
  guard.routes.push(route);
  if (access.kinds === 'anyone') return [];
  const kinds = access.kinds;
  return [
    async function authorize(ctx: Context, next) {
      // Read per request: a router built only to create a capability (CLI commands, benches)
      // never serves, so it needs no authenticator; one that serves without it is a bug.
      const authenticator = guard.authenticator;
      if (authenticator === null) {
        throw new Error(`${route.path}: the router serves without guardRouter(router, …)`);
      }
      const state = ctx.state as RequestState;
      const principal = await authenticator.authenticate(ctx.get('authorization') || undefined, {
        origin: ctx.get('origin') || null,
        // A getter: the request logger is made only if a refusal is logged.
        get log() {
          return state.log;
        },
      });
      assertKind(principal, kinds);
      if (access.scope !== undefined && !hasScope(principal, access.scope)) {
        throw ruleFailed('scope', `This credential lacks the ${access.scope} scope`);
      }
      (ctx.state as AuthState).principal = principal;
      await next();
    },
  ];
}

function assertKind(principal: Principal, kinds: readonly PrincipalKind[]): void {
  const kind = principalKind(principal);
  if (kinds.includes(kind)) return;
  if (kind === 'browser_key') {
    // Browser keys are public by design (they ship in web pages).
    throw ruleFailed('browser-key-scope', 'Browser keys work only for gateway requests');
  }
  if (kind === 'app_end_user') {
    throw ruleFailed(
      'principal-kind',
      "A token acting for an app's end user speaks for that user, not for the account: it cannot call this operation",
    );
  }
  throw ruleFailed('principal-kind', `This operation is not open to an ${KIND_LABELS[kind]}`);
}

/**
 * Checks every declared id present in the validated input against the caller (after parsing,
 * before the handler). Missing and null values are left to the handler.
 */
export async function assertOwnership(
  principal: Principal,
  access: Access,
  input: { params: unknown; query: unknown; body: unknown },
): Promise<void> {
  if (access.ids === undefined || hasScope(principal, 'admin')) return;
  for (const [location, rule] of Object.entries(access.ids) as Array<[IdLocation, IdRule]>) {
    const [where, field] = location.split('.', 2) as ['params' | 'query' | 'body', string];
    const value = (input[where] as Record<string, unknown> | undefined)?.[field];
    if (typeof value !== 'string') continue;
    await assertOwns(principal, rule, value);
  }
}

/** One id against one rule; exported for services that check ids inside a list (usage events). */
export async function assertOwns(principal: Principal, rule: IdRule, id: string): Promise<void> {
  if (hasScope(principal, 'admin')) return;
  if (rule.rule === 'own_app') {
    if (principal.appId !== id) {
      throw ruleFailed('ownership', `Only the app's own client (or an operator) may use ${id}`);
    }
    return;
  }
  if (rule.find === undefined) {
    if (principal.accountId !== id) {
      throw ruleFailed(
        'ownership',
        "This credential may only act on its own account (another account's needs the admin scope)",
      );
    }
    return;
  }
  const owner = await rule.find(id);
  // Another account's ids answer as unknown ones do: their existence is not confirmed.
  if (owner !== null && owner.accountId !== principal.accountId) {
    throw new NotFound(`No ${rule.names} ${id}`);
  }
}

/** A one-line description of an access rule, for the docs table. */
export function describeAccess(access: Access): { who: string; scope: string; ids: string } {
  if (access.kinds === 'anyone') {
    return { who: 'anyone', scope: '', ids: access.note ?? '' };
  }
  const ids = Object.entries(access.ids ?? {}).map(([location, rule]) => {
    const what =
      rule!.rule === 'own_app'
        ? "the caller's own app"
        : rule!.find === undefined
          ? "the caller's own account"
          : `the caller's account's ${rule!.names}`;
    return `\`${location}\`: ${what}`;
  });
  if (access.note !== undefined) ids.push(access.note);
  return {
    who: access.kinds.join(', '),
    scope: access.scope ?? '',
    ids: ids.join('; '),
  };
}

/**
 * docs/authorization.md: every declared route with who may call it, the scope it needs and
 * the rule for each id it touches. Generated (`npm run docs:authz`); a test keeps it current.
 */
export function renderAuthorizationTable(routes: readonly DeclaredRoute[]): string {
  const sorted = [...routes].sort(
    (a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method),
  );
  const escape = (text: string) => text.replaceAll('|', '\\|');
  const lines = [
    '# Who may call what',
    '',
    "<!-- Generated by `npm run docs:authz` from the routes' access declarations; do not edit. -->",
    '',
    'Every operation declares the kinds of caller it is open to, the scope the credential must',
    'carry (`admin` satisfies any scope) and, for each id it reads, whose that id must be.',
    'Anyone else is answered 403 (`{"error":"Forbidden",…}`) before the request is processed;',
    "another account's resource ids are answered 404, as ids that do not exist are. Operators",
    '(the `admin` scope) may name any id.',
    '',
    '| kind | who |',
    '|---|---|',
    ...PRINCIPAL_KINDS.map((kind) => `| \`${kind}\` | ${KIND_LABELS[kind]} |`),
    '',
    '| operation | who may call | scope | ids and rules |',
    '|---|---|---|---|',
    ...sorted.map((route) => {
      const { who, scope, ids } = describeAccess(route.access);
      const path = route.path.replace(/:(\w+)/g, '{$1}');
      return `| \`${route.method.toUpperCase()} ${path}\` | ${escape(who)} | ${scope ? `\`${scope}\`` : ''} | ${escape(ids)} |`;
    }),
    '',
  ];
  return lines.join('\n');
}
