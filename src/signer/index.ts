// The payment signer: keystore, chain view, TicketBroker funding (journal + policy), status.
// Its facade (`createSigner`) holds the go-livepeer remote-signer protocol too. Other code
// reaches the signer only through what is exported here.
import type { Config } from '../config.ts';
import type { DatabaseHandle } from '../database.ts';
import type { Recorder } from '../metering/index.ts';
import type { Authenticator } from '../platform/auth.ts';
import type { Capability } from '../platform/capability.ts';
import type { EventSink } from '../platform/events.ts';
import type { Clock } from '../platform/clock.ts';
import type { DirectRoute, Router } from '../platform/http.ts';
import type { Logger } from '../platform/log.ts';
import type { Metrics } from '../platform/metrics.ts';
import type { Secrets } from '../platform/secrets.ts';
import type { SpendGate } from '../platform/spend.ts';
import { createRemoteSigner } from './remote/index.ts';
import type { StreamDirectory as Streams } from './remote/payers.ts';
import type { RemoteSignerService as RemoteService } from './remote/service.ts';
import { signerRoutes } from './routes.ts';
import { createSignerService } from './service.ts';
import type { Signer as Service } from './service.ts';

export type { FundingTransactionsTable, SignerConfirmationsTable } from './table.ts';
export type { ChainSnapshot, ContractAddresses, RpcStatus, SenderInfo } from './chain.ts';
export type { PaymentSigner, Signer as SignerService, SignerStatus } from './service.ts';
export type { FundingTransaction } from './queries.ts';
export type { OperationPreview, OperationRequest, OperationResult } from './operations.ts';
export { CONFIRMATION_TTL_MS } from './operations.ts';
export { createSignerService } from './service.ts';
export { fundingTransactionJson, signerStatusJson } from './schemas.ts';
export type { SignerStatusJson } from './schemas.ts';
export { SignerStartupError, WrongKeystorePassword } from './errors.ts';
export { keystoreAddress, openKeystore, writeKeystore } from './keystore.ts';
export { createMessageSigner, createSigningPool, eip191Digest } from './signing.ts';
export type { SigningPool } from './signing.ts';
export { signerCommands } from './cli.ts';
export type { SignerCliDeps } from './cli.ts';
export { FUNDING_LOCK_KEY } from './funding.ts';
// Part 2: the go-livepeer remote-signer protocol.
export {
  SIGNER_PATHS,
  createBase64Memo,
  isSignerPath,
  parseJsonExact,
  parseLivePaymentRequest,
  signerNotFound,
} from './remote/routes.ts';
export type { SignerSessionsTable } from './remote/table.ts';
export type { RemoteSignerService, LivePaymentRequest } from './remote/service.ts';
// The steps of one payment, for their own tests (test/signer/payment-steps.test.ts).
export {
  billableUnits,
  checkPriceCeilings,
  checkRefresh,
  countTickets,
  createOfferCache,
  makeTickets,
  readOffer,
  restoreSession,
} from './remote/payment.ts';
export type { Offer, Session, TicketTerms } from './remote/payment.ts';
export { createSessions } from './remote/sessions.ts';
export type { StreamDirectory, StreamOwner } from './remote/payers.ts';
export { createWire } from './remote/wire.ts';
export type { Wire } from './remote/wire.ts';
export { auxData, expectedValue, ticketHash, ticketHasher, MAX_WIN_PROB } from './remote/ticket.ts';
// The exact rationals, for the test that pins the cheaper operations to the plain ones.
export * as rationals from './remote/rational.ts';
export { encodeState, decodeState, goTime } from './remote/state.ts';

export interface SignerDeps {
  config: Config['signer'];
  database: DatabaseHandle;
  log: Logger;
  metrics: Metrics;
  secrets: Pick<Secrets, 'hmacBytes'>;
  authenticator: Authenticator;
  /** Metering's recorder: each payment is recorded durably before it is answered. */
  recorder: Pick<Recorder, 'recordNow'>;
  /** Billing's gate, asked before a payment is signed. */
  spend: SpendGate;
  /** The front door's streams, for shared gateway credentials; null without one. */
  streams: Streams | null;
  clock?: Clock;
  /** Outbound events (notifications' EventSink). */
  events?: EventSink;
}

/** The signer as the composition root sees it: the service's operations, plus the protocol. */
export interface Signer extends Capability, Omit<Service, 'start' | 'stop'> {
  /** The go-livepeer remote-signer protocol (payments, orchestrator info). */
  remote: RemoteService;
  /** The signer-only listener's routes (SIGNER_PORT): the go-livepeer protocol alone. */
  remoteRoutes(router: Router): void;
  /**
   * The payment route registered on `router` (by routes or remoteRoutes), for the listener
   * to answer outside Koa's dispatch (platform/http.ts DirectRoute); null if none was.
   */
  paymentRoute(router: Router): Pick<DirectRoute, 'claims' | 'answer'> | null;
}

export async function createSigner(deps: SignerDeps): Promise<Signer> {
  const service = await createSignerService({
    config: deps.config,
    db: deps.database.db,
    log: deps.log,
    metrics: deps.metrics,
    events: deps.events,
    ...(deps.clock === undefined ? {} : { clock: deps.clock }),
  });
  const remote = createRemoteSigner({
    db: deps.database.db,
    clock: deps.clock,
    log: deps.log,
    secrets: deps.secrets,
    config: deps.config.remote,
    signer: service,
    recorder: deps.recorder,
    authenticator: deps.authenticator,
    spend: deps.spend,
    streams: deps.streams,
  });
  return {
    name: 'signer',
    get enabled() {
      return service.enabled;
    },
    paymentSigner: () => service.paymentSigner(),
    snapshot: () => service.snapshot(),
    status: () => service.status(),
    fundingHistory: (before, limit) => service.fundingHistory(before, limit),
    refresh: () => service.refresh(),
    operate: (request) => service.operate(request),
    preview: (request) => service.preview(request),
    execute: (kind, token, actor) => service.execute(kind, token, actor),
    remote: remote.service,
    routes(router) {
      signerRoutes(router, { signer: service, authenticator: deps.authenticator });
      remote.routes(router);
    },
    remoteRoutes: (router) => remote.routes(router),
    paymentRoute: (router) => remote.directRoute(router),
    // The chain poll and the funding policy run in a serving process only.
    start: () => service.start(),
    close: () => service.stop(),
  };
}
