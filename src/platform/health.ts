// Liveness, readiness and metrics endpoints for orchestrators and Prometheus.
import { timingSafeEqual } from 'node:crypto';
import type { QueryExecutorProvider } from 'kysely';
import { sql } from 'kysely';
import { z } from 'zod';
import { Unauthorized } from './errors.ts';
import type { FixedAnswer, Lifecycle, Router } from './http.ts';
import { defineRoute, guardedRoute } from './http.ts';
import type { Metrics } from './metrics.ts';
import { pendingMigrations } from './migrations.ts';

export interface HealthDeps {
  /** Any database handle (`Kysely`): readiness runs raw SQL only. */
  db: QueryExecutorProvider;
  metrics: Metrics;
  lifecycle: Lifecycle;
  shippedMigrations: readonly string[];
  metricsToken: string | null;
}

// Readiness must answer quickly even when the database hangs: orchestrators probe every few
// seconds and treat a slow answer as a failure anyway.
const READINESS_TIMEOUT_MS = 2_000;

const checkResult = z.enum(['ok', 'failing']);
const readiness = z.object({
  status: z.enum(['ready', 'unavailable']),
  checks: z.object({ database: checkResult, migrations: checkResult }),
  message: z.string().optional(),
});

/**
 * Liveness never varies: the listener sends it before Koa (http.ts FixedAnswer); the route
 * below answers the other forms of the request (a query string, HEAD, an Origin) the same way.
 */
export const LIVENESS = {
  method: 'GET',
  path: '/healthz',
  status: 200,
  body: { status: 'ok' },
} as const satisfies FixedAnswer;

export function healthRoutes(router: Router, deps: HealthDeps): void {
  defineRoute(
    router,
    {
      method: 'get',
      path: '/healthz',
      response: z.object({ status: z.literal('ok') }),
      access: { kinds: 'anyone' },
    },
    function liveness() {
      return LIVENESS.body;
    },
  );

  defineRoute(
    router,
    { method: 'get', path: '/readyz', response: readiness, access: { kinds: 'anyone' } },
    async function readinessCheck({ ctx, setStatus }) {
      const result = await checkReadiness(deps);
      if (result.status !== 'ready') setStatus(503);
      ctx.set('Cache-Control', 'no-store');
      return result;
    },
  );

  guardedRoute(
    router,
    {
      method: 'get',
      path: '/metrics',
      access: { kinds: 'anyone', note: 'METRICS_TOKEN as a bearer token, when set' },
    },
    async function metrics(ctx) {
      if (
        deps.metricsToken !== null &&
        !bearerMatches(ctx.get('authorization'), deps.metricsToken)
      ) {
        throw new Unauthorized('GET /metrics needs Authorization: Bearer <METRICS_TOKEN>', {
          headers: { 'WWW-Authenticate': 'Bearer realm="metrics"' },
        });
      }
      ctx.set('Content-Type', deps.metrics.registry.contentType);
      ctx.body = await deps.metrics.registry.metrics();
    },
  );
}

async function checkReadiness(deps: HealthDeps): Promise<z.input<typeof readiness>> {
  if (deps.lifecycle.shuttingDown) {
    return {
      status: 'unavailable',
      checks: { database: 'ok', migrations: 'ok' },
      message: 'shutting down',
    };
  }
  let database: 'ok' | 'failing' = 'ok';
  let migrations: 'ok' | 'failing' = 'ok';
  let message: string | undefined;
  try {
    const pending = await withTimeout(
      (async () => {
        await sql`select 1`.execute(deps.db);
        return pendingMigrations(deps.db, deps.shippedMigrations);
      })(),
      READINESS_TIMEOUT_MS,
    );
    if (pending.length > 0) {
      migrations = 'failing';
      message = `pending migrations: ${pending.join(', ')}; run tollhouse migrate`;
    }
  } catch {
    database = 'failing';
    migrations = 'failing';
    message = 'database unreachable';
  }
  const ready = database === 'ok' && migrations === 'ok';
  return { status: ready ? 'ready' : 'unavailable', checks: { database, migrations }, message };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function bearerMatches(header: string, token: string): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  if (match === null) return false;
  const given = Buffer.from(match[1] ?? '');
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
