// CORS for browser keys. A preflight carries no Authorization header, so it cannot name a
// key: it is answered only for an origin that some active browser key allows (the union is
// kept in memory and reloaded on every key change NOTIFY). Other origins get 403 with no CORS
// headers, so the browser never sends the real request. The real request is then checked per
// key by the verifier (origin list, resources).
import type { Kysely } from 'kysely';
import type { Middleware } from 'koa';
import { ruleFailed } from '../platform/auth.ts';
import type { Database } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import { normalizeOrigin } from './format.ts';
import { findActiveBrowserOrigins } from './queries.ts';
import type { Clock } from '../platform/clock.ts';

// Browsers cache a preflight for at most 2 h (Chromium) / 24 h (Firefox); 10 min keeps a
// revoked origin from lingering long in browsers.
const PREFLIGHT_MAX_AGE_SECONDS = 600;
// Notifications come in bursts (a rotation is two changes); one reload per burst is enough.
const RELOAD_DEBOUNCE_MS = 50;
const ALLOWED_METHODS = 'GET, POST, PUT, PATCH, DELETE';
const EXPOSED_HEADERS = 'X-Request-Id, Retry-After';
// The OpenID provider answers CORS for its own endpoints (per client, by oidc-provider's
// rules); browser keys never apply there.
const OWN_CORS_PREFIXES = ['/oidc', '/.well-known/', '/interaction/', '/device'];

export interface BrowserOrigins {
  has(origin: string): boolean;
  reload(): Promise<void>;
  /** Schedules a reload (called on key change notifications). */
  changed(): void;
  close(): void;
}

export function createBrowserOrigins(
  db: Kysely<Database>,
  log: Logger,
  clock: Clock,
): BrowserOrigins {
  let origins = new Set<string>();
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  const reload = async () => {
    origins = new Set(await findActiveBrowserOrigins(db, clock()));
  };
  return {
    has: (origin) => origins.has(origin),
    reload,
    changed() {
      if (timer !== null || closed) return;
      timer = setTimeout(() => {
        timer = null;
        reload().catch((error: unknown) =>
          log.warn({ err: error }, 'could not reload browser key origins'),
        );
      }, RELOAD_DEBOUNCE_MS);
      timer.unref();
    },
    close() {
      closed = true;
      if (timer !== null) clearTimeout(timer);
    },
  };
}

export function browserCors(origins: BrowserOrigins): Middleware {
  return async function browserCors(ctx, next) {
    const header = ctx.get('origin');
    if (header === '' || OWN_CORS_PREFIXES.some((p) => ctx.path.startsWith(p))) return next();
    ctx.vary('Origin');
    const origin = normalizeOrigin(header);
    const allowed = origin !== null && origins.has(origin);
    const preflight = ctx.method === 'OPTIONS' && ctx.get('access-control-request-method') !== '';
    if (preflight) {
      if (!allowed) {
        throw ruleFailed(
          'cors-origin',
          `No browser key allows the origin ${origin ?? 'of this request'}`,
        );
      }
      ctx.set('Access-Control-Allow-Origin', header);
      ctx.set('Access-Control-Allow-Methods', ALLOWED_METHODS);
      // Echo what the page asked for (bounded): the key, not the headers, is what is checked.
      const requested = ctx.get('access-control-request-headers').slice(0, 1024);
      ctx.set('Access-Control-Allow-Headers', requested || 'Authorization, Content-Type');
      ctx.set('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE_SECONDS));
      ctx.status = 204;
      return;
    }
    if (allowed) {
      ctx.set('Access-Control-Allow-Origin', header);
      ctx.set('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    }
    await next();
  };
}
