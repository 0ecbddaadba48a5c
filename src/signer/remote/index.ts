// The go-livepeer remote-signer protocol (part 2 of the signer): service + root routes.
// Reached through src/signer/index.ts.
import type { Kysely } from 'kysely';
import type { Config } from '../../config.ts';
import type { Recorder } from '../../metering/index.ts';
import type { Authenticator } from '../../platform/auth.ts';
import type { Database } from '../../database.ts';
import type { Router } from '../../platform/http.ts';
import type { Logger } from '../../platform/log.ts';
import type { Secrets } from '../../platform/secrets.ts';
import type { SpendGate } from '../../platform/spend.ts';
import type { Signer } from '../service.ts';
import { createPayers } from './payers.ts';
import type { StreamDirectory } from './payers.ts';
import { remoteSignerRoutes } from './routes.ts';
import type { SignerDirectRoute } from './routes.ts';
import { createRemoteSignerService } from './service.ts';
import type { RemoteSignerService } from './service.ts';
import { createWire } from './wire.ts';

export interface RemoteSignerDeps {
  db: Kysely<Database>;
  log: Logger;
  config: Config['signer']['remote'];
  signer: Pick<Signer, 'paymentSigner' | 'snapshot'>;
  recorder: Pick<Recorder, 'recordNow'>;
  authenticator: Authenticator;
  spend: SpendGate;
  /** Seals the payment state handed to gateways (HMAC under TOLLHOUSE_SECRET). */
  secrets: Pick<Secrets, 'hmacBytes'>;
  /** The front door's streams (gateway), for shared gateway credentials; null without one. */
  streams: StreamDirectory | null;
  clock?: () => Date;
}

export interface RemoteSigner {
  service: RemoteSignerService;
  /** Registers the protocol's routes at the root: on the main listener and the signer-only one. */
  routes(router: Router): void;
  /** The payment route of `router`, answered outside Koa's dispatch (routes.ts); null before
   * routes(router). */
  directRoute(router: Router): SignerDirectRoute | null;
}

export function createRemoteSigner(deps: RemoteSignerDeps): RemoteSigner {
  const service = createRemoteSignerService({
    db: deps.db,
    log: deps.log.child({ capability: 'signer', component: 'remote-signer' }),
    config: deps.config,
    paymentSigner: () => deps.signer.paymentSigner(),
    snapshot: () => deps.signer.snapshot(),
    recorder: deps.recorder,
    wire: createWire(),
    secrets: deps.secrets,
    clock: deps.clock,
  });
  const routeDeps = {
    service,
    authenticator: deps.authenticator,
    spend: deps.spend,
    payers: createPayers({
      streams: deps.streams,
      sharedCredentials: deps.config.sharedCredentials,
    }),
    orchestrators: deps.config.orchestrators,
  };
  // Each router's own chain: its authorization reads that router's authenticator.
  const direct = new WeakMap<Router, SignerDirectRoute>();
  return {
    service,
    routes: (router) => void direct.set(router, remoteSignerRoutes(router, routeDeps)),
    directRoute: (router) => direct.get(router) ?? null,
  };
}
