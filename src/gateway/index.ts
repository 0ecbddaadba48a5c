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
import { gatewayRoutes } from './routes.ts';
import { createStreamService } from './streams.ts';
import type { StreamService } from './streams.ts';
import type { Clock } from '../platform/clock.ts';
import { systemClock } from '../platform/clock.ts';

export type { StreamsTable } from './table.ts';
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
  clock?: Clock;
}

export interface Gateway extends Capability {
  /** The go-livepeer paths, answered outside Koa's middleware chain (`Http.listener`). */
  frontDoor: Pick<DirectRoute, 'claims' | 'answer'>;
  streams: StreamService;
  close(): Promise<void>;
}

export function createGateway(deps: GatewayDeps): Gateway {
  const frontDoor = createFrontDoor({ ...deps, trustProxy: deps.config.trustProxy });
  const streams = createStreamService({ db: deps.database.db, secrets: deps.secrets });
  return {
    name: 'gateway',
    frontDoor: { claims: frontDoor.claims, answer: frontDoor.answer },
    streams,
    routes(router) {
      gatewayRoutes(router, {
        streams,
        authenticator: deps.authenticator,
        spend: deps.spend,
        webhookSecret: deps.config.webhookSecret,
        signerMaxPrice: deps.config.signerMaxPrice,
        clock: deps.clock ?? systemClock,
      });
    },
    close: () => frontDoor.close(),
  };
}
