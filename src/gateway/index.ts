// Front door: the go-livepeer AI paths behind authentication, limits, the spend gate and
// metering; and the go-livepeer webhooks. Other capabilities reach it only through here.
import type { Config } from '../config.ts';
import type { Recorder } from '../metering/index.ts';
import type { Authenticator } from '../platform/auth.ts';
import type { Capability } from '../platform/capability.ts';
import type { DatabaseHandle } from '../database.ts';
import type { DirectRoute } from '../platform/http.ts';
import type { Secrets } from '../platform/secrets.ts';
import type { SpendGate } from '../platform/spend.ts';
import { createFrontDoor } from './front-door.ts';
import { createReplicaHeartbeat } from './replicas.ts';
import type { ReplicaHeartbeat } from './replicas.ts';
import type { LimitSource } from '../platform/limits.ts';
import { NO_LIMIT_SOURCE } from '../platform/limits.ts';
import type { Logger } from '../platform/log.ts';
import { effectiveLimitsRoutes } from './limit-routes.ts';
import type { KeyLimitsPort } from './limit-routes.ts';
import { gatewayRoutes } from './routes.ts';
import { createStreamService } from './streams.ts';
import type { StreamService } from './streams.ts';
import type { Clock } from '../platform/clock.ts';
import { systemClock } from '../platform/clock.ts';

export type { ReplicasTable, StreamsTable } from './table.ts';
export type { KeyLimitsPort } from './limit-routes.ts';
// The limiter itself, for bench/limits.ts (accuracy and CPU against the per-replica limiter).
export { createLimiter, effectiveRule, rateLimitHeaders } from './limits.ts';
export type { LimitRule, LimitSubject } from './limits.ts';
export type { Stream } from './queries.ts';
export type { StreamService };

export { USAGE_SOURCE } from './front-door.ts';
export { BATCH_PIPELINES, LIVE_PREFIXES, LLM_DEFAULT_MAX_TOKENS, unitsFor } from './pipelines.ts';
export type { Pipeline } from './pipelines.ts';
export { webhookMaxPrice } from './routes.ts';

export interface GatewayDeps {
  config: Config['gateway'];
  database: DatabaseHandle;
  secrets: Secrets;
  authenticator: Authenticator;
  recorder: Pick<Recorder, 'enqueue'>;
  /** Billing's "may this principal spend?"; ALLOW_ALL_SPEND until billing provides one. */
  spend: SpendGate;
  /** Plans' limits (billing) and keys' overrides (keys); settings only, without them. */
  limits?: LimitSource;
  /** Keys' overrides by key id, for GET /v1/keys/{id}/limits (absent: no such route). */
  keyLimits?: KeyLimitsPort;
  log: Logger;
  clock?: Clock;
}

export interface Gateway extends Capability {
  /** The go-livepeer paths, answered outside Koa's middleware chain (`Http.listener`). */
  frontDoor: Pick<DirectRoute, 'claims' | 'answer'>;
  streams: StreamService;
  /** Live replica count behind cluster-wide limits (null with GATEWAY_LIMITS_SCOPE=replica). */
  heartbeat: ReplicaHeartbeat | null;
  start(): Promise<void>;
  close(): Promise<void>;
}

export function createGateway(deps: GatewayDeps): Gateway {
  const { limits } = deps.config;
  const heartbeat =
    limits.scope === 'cluster'
      ? createReplicaHeartbeat({
          db: deps.database.db,
          log: deps.log.child({ component: 'replica-heartbeat' }),
          intervalMs: limits.heartbeatMs,
          ttlMs: limits.replicaTtlMs,
        })
      : null;
  const limitSource = deps.limits ?? NO_LIMIT_SOURCE;
  const replicas = heartbeat === null ? () => 1 : () => heartbeat.live();
  const frontDoor = createFrontDoor({
    ...deps,
    limits: limitSource,
    replicas,
    trustProxy: deps.config.trustProxy,
  });
  const streams = createStreamService({ db: deps.database.db, secrets: deps.secrets });
  return {
    name: 'gateway',
    frontDoor: { claims: frontDoor.claims, answer: frontDoor.answer },
    streams,
    heartbeat,
    routes(router) {
      gatewayRoutes(router, {
        streams,
        authenticator: deps.authenticator,
        spend: deps.spend,
        webhookSecret: deps.config.webhookSecret,
        signerMaxPrice: deps.config.signerMaxPrice,
        clock: deps.clock ?? systemClock,
      });
      if (deps.keyLimits !== undefined) {
        effectiveLimitsRoutes(router, {
          keys: deps.keyLimits,
          limits: limitSource,
          config: deps.config,
          replicas,
        });
      }
    },
    async start() {
      await heartbeat?.start();
    },
    async close() {
      await heartbeat?.close();
      await frontDoor.close();
    },
  };
}
