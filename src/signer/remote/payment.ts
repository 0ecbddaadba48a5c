// The steps of one go-livepeer payment (POST /generate-live-payment), in go-livepeer's order
// (server/remote_signer.go GenerateLivePayment, pm/sender.go): ./service.ts runs them one
// after the other, so a stack trace names the step that refused. Each takes what it reads and
// returns what the next needs; only restoreSession does I/O (through a SessionStore).
//
// The order of the checks is part of the wire behaviour: a request with two faults gets the
// refusal go-livepeer gives first (test/signer/go-livepeer.test.ts), so steps are not
// reordered for convenience.
import { randomBytes, randomUUID } from 'node:crypto';
import { getBytes, hexlify, toUtf8Bytes } from 'ethers';
import type { Config } from '../../config.ts';
import type { UsageEvent } from '../../metering/index.ts';
import type { Principal } from '../../platform/auth.ts';
import { feeWei } from '../../platform/money.ts';
import type { ChainSnapshot } from '../chain.ts';
import { keccak256Bytes } from '../keccak.ts';
import {
  BadSignerRequest,
  NoTicketsNeeded,
  PriceExceeded,
  RefreshSession,
  SenderCheckFailed,
  SignerNotReady,
  StaleState,
} from './errors.ts';
import type { SessionRow } from './queries.ts';
import * as Q from './rational.ts';
import type { Rational } from './rational.ts';
import { decodeState } from './state.ts';
import type { PaymentState } from './state.ts';
import { auxData, expectedValue, ticketHasher, toBigInt, word } from './ticket.ts';
import type {
  AuthTokenMessage,
  ExpirationParamsMessage,
  OrchestratorInfoMessage,
  PriceInfoMessage,
  TicketParamsMessage,
  Wire,
} from './wire.ts';

export const JOB_TYPES = ['', 'lv2v', 'live', 'fixed'] as const;
export type JobType = (typeof JOB_TYPES)[number];

/** The request, as ./routes.ts parsed it from go-livepeer's JSON. */
export interface LivePaymentRequest {
  state: { state: Uint8Array | null; sig: Uint8Array | null };
  orchestrator: Uint8Array;
  manifestId: string;
  app: string;
  inPixels: bigint;
  type: string;
  maxPrice: { price: Rational; unit: string } | null;
  capabilities: Uint8Array | null;
}

export interface Attribution {
  caller: Principal;
  /** The front-door stream the payment was attributed through, if any. */
  streamId: string | null;
}

// go-livepeer constants (server/remote_signer.go, pm/sender.go).
const MAX_TICKETS_PER_CALL = 100n;
// The orchestrator auth token lives 30 minutes; refresh in its last 10% (3 minutes).
const AUTH_TOKEN_REFRESH_SECONDS = 180n;
// Billable units of the first call of a session, before any time has elapsed.
const FIRST_CALL_LV2V_SECONDS = 60;
const FIRST_CALL_LIVE_SECONDS = 10n;
// lv2v bills 720p at 30 fps: 1280 × 720 × 30 pixels per second.
const LV2V_PIXELS_PER_SECOND = 1280n * 720n * 30n;
// Units the request's maxPrice must be in, per job type (LIVEPEER.md §2.2).
const MAX_PRICE_UNIT: Record<JobType, string | null> = {
  '': null,
  lv2v: '720p-pixel-seconds',
  live: 'seconds',
  fixed: 'fixed',
};
const PIPELINE: Record<JobType, string> = {
  '': 'live-video-to-video',
  lv2v: 'live-video-to-video',
  live: 'live',
  fixed: 'fixed',
};
const UNIT: Record<JobType, UsageEvent['unit']> = {
  '': 'pixels',
  lv2v: 'pixels',
  live: 'seconds',
  fixed: 'requests',
};
const EMPTY_HASH = keccak256Bytes(new Uint8Array(0));

// ---- 1. the orchestrator's offer ----------------------------------------------------------

/** What the orchestrator offers: its info, checked, and the request's job type. */
export interface Offer {
  info: OrchestratorInfoMessage;
  price: PriceInfoMessage;
  params: TicketParamsMessage;
  type: JobType;
  /** 0x-prefixed lowercase hex, as the state stores it. */
  orchestratorAddress: string;
  /** 0x-prefixed hex: the PMSessionID of the state. */
  recipientRandHash: string;
  /** The params' big integers, read once per orchestrator info (see OfferCache). */
  faceValue: bigint;
  winProb: bigint;
  expirationBlock: bigint;
  /** faceValue × winProb / (2²⁵⁶ − 1), reduced: a gcd of 256-bit numbers, once per offer. */
  ev: Rational;
}

/** What an orchestrator info decodes to, whatever the request around it. */
type DecodedOffer = Omit<Offer, 'type'>;

/**
 * Decoded offers by the bytes object they came from. A stream presents the same
 * OrchestratorInfo on every payment until its session is refreshed (every few minutes), and
 * ./routes.ts hands the same bytes object back for the same base64 text, so the protobuf
 * decode, the checks and the expected value (a 256-bit gcd) run once per orchestrator info
 * instead of once per payment. Only offers that passed every check are kept, so a request
 * refused before is refused again by the same code. A WeakMap: entries go with the bytes.
 */
export type OfferCache = WeakMap<Uint8Array, DecodedOffer>;

export function createOfferCache(): OfferCache {
  return new WeakMap();
}

/** Decodes and checks the request's OrchestratorInfo, job type and capabilities (→ 400). */
export function readOffer(wire: Wire, request: LivePaymentRequest, cache?: OfferCache): Offer {
  if (request.orchestrator.length === 0) throw new BadSignerRequest('missing orchestrator');
  let decoded = cache?.get(request.orchestrator);
  if (decoded === undefined) {
    decoded = decodeOffer(wire, request.orchestrator);
    cache?.set(request.orchestrator, decoded);
  }
  if (!(JOB_TYPES as readonly string[]).includes(request.type)) {
    throw new BadSignerRequest('invalid job type');
  }
  if (request.capabilities !== null) {
    try {
      wire.checkCapabilities(request.capabilities);
    } catch {
      throw new BadSignerRequest('invalid capabilities');
    }
  }
  return { ...decoded, type: request.type as JobType };
}

function decodeOffer(wire: Wire, bytes: Uint8Array): DecodedOffer {
  let info: OrchestratorInfoMessage;
  try {
    info = wire.decodeOrchestratorInfo(bytes);
  } catch {
    throw new BadSignerRequest('invalid orchestrator info');
  }
  const price = info.priceInfo;
  if (price === null || price.pricePerUnit <= 0n || price.pixelsPerUnit <= 0n) {
    throw new BadSignerRequest('missing or zero priceInfo');
  }
  const params = info.ticketParams;
  if (params === null) throw new BadSignerRequest('missing ticketParams');
  if (params.recipient.length !== 20 || params.recipientRandHash.length !== 32) {
    throw new BadSignerRequest('invalid ticketParams');
  }
  const faceValue = toBigInt(params.faceValue);
  const winProb = toBigInt(params.winProb);
  return {
    info,
    price,
    params,
    orchestratorAddress: hexlify(info.address).toLowerCase(),
    recipientRandHash: hexlify(params.recipientRandHash),
    faceValue,
    winProb,
    expirationBlock: toBigInt(params.expirationBlock),
    ev: expectedValue(faceValue, winProb),
  };
}

// ---- 2. the session: the gateway's state verified and advanced, or a new one ---------------

/** Where restoreSession looks a state up; ./service.ts backs it with a cache and the table. */
export interface SessionStore {
  /** The state this replica handed out with this digest, and its session row then. */
  handedOut(digest: string): { row: SessionRow; state: PaymentState } | undefined;
  findSession(stateId: string): Promise<SessionRow | null>;
  /** Whether `sig` is this signer's seal of `state` (see ./service.ts). */
  sealed(state: Uint8Array, sig: Uint8Array): boolean;
  /** sha256(State ‖ Sig), hex: the fingerprint of a state handed out (signer_sessions). */
  digest(state: Uint8Array, sig: Uint8Array): string;
}

export interface Session {
  /** The state this payment writes: the gateway's one SequenceNumber on, or a new one. */
  state: PaymentState;
  /** False on the first payment of a session (the gateway sent no state). */
  resumed: boolean;
  /** The session as it was (null for a new one), to put back if the payment fails. */
  previous: { seq: bigint; stateDigest: string } | null;
  manifestId: string;
}

export interface Payer {
  /** Pays (metered, owns the session). */
  principal: Principal;
  /** Called: a shared gateway credential paying for a stream's owner, else the payer. */
  caller: Principal;
}

/**
 * The gateway's state, verified (seal, owner, replay) and advanced by one SequenceNumber; or,
 * when it sent none, a new session authorized by the caller. The replay and ownership checks
 * here give a clear refusal early; the claim in recordPayment enforces them atomically.
 */
export async function restoreSession(
  store: SessionStore,
  request: LivePaymentRequest,
  offer: Offer,
  payer: Payer,
  now: Date,
): Promise<Session> {
  const manifestId =
    request.manifestId !== '' ? request.manifestId : randomBytes(8).toString('hex');
  const bytes = request.state.state;
  if (bytes === null || bytes.length === 0) {
    return {
      state: newState(offer, request, payer, now),
      resumed: false,
      previous: null,
      manifestId,
    };
  }
  const sig = request.state.sig ?? new Uint8Array(0);
  const digest = store.digest(bytes, sig);
  // The state this replica handed out last for its StateID is ours and current; anything
  // else is parsed, read, and gets the MAC check. A state whose digest is the session's last
  // is current whatever its Sig: that is how states sealed by an older version (EIP-191
  // signatures) stay valid across an upgrade.
  const remembered = store.handedOut(digest);
  const parsed = remembered?.state ?? decodeState(bytes);
  const session =
    remembered?.row ?? (parsed === null ? null : await store.findSession(parsed.StateID));
  const current = session !== null && session.lastStateDigest === digest;
  if (!current && !store.sealed(bytes, sig)) throw new BadSignerRequest('invalid sig');
  if (parsed === null) throw new BadSignerRequest('invalid state');
  if (request.manifestId === '') throw new BadSignerRequest('missing manifestID');
  if (parsed.OrchestratorAddress !== offer.orchestratorAddress) {
    throw new BadSignerRequest('orchestratorAddress mismatch');
  }
  if (request.app !== parsed.App) throw new BadSignerRequest('app mismatch');
  // A state without a type takes the request's (go-livepeer remote_signer.go).
  if (parsed.Type !== '' && request.type !== parsed.Type) {
    throw new BadSignerRequest('job type mismatch');
  }
  const previous = { seq: parsed.SequenceNumber, stateDigest: session?.lastStateDigest ?? '' };
  const state = { ...parsed, Type: request.type, SequenceNumber: parsed.SequenceNumber + 1n };
  if (session === null) throw new StaleState('unknown StateID');
  if (session.accountId !== payer.principal.accountId) {
    throw new StaleState('this state belongs to another account', 403);
  }
  if (session.lastSeq >= state.SequenceNumber) {
    throw new StaleState(
      `state replayed: SequenceNumber ${parsed.SequenceNumber} was already used; send the state of the last response`,
    );
  }
  return { state, resumed: true, previous, manifestId };
}

function newState(
  offer: Offer,
  request: LivePaymentRequest,
  payer: Payer,
  now: Date,
): PaymentState {
  const caller = payer.caller;
  return {
    StateID: randomUUID(),
    PMSessionID: offer.recipientRandHash,
    LastUpdate: now,
    OrchestratorAddress: offer.orchestratorAddress,
    App: request.app,
    AuthExpiry: 0n,
    SenderNonce: 0n,
    Balance: Q.ZERO,
    InitialPricePerUnit: offer.price.pricePerUnit,
    InitialPixelsPerUnit: offer.price.pixelsPerUnit,
    Type: offer.type,
    SequenceNumber: 0n,
    // Who authorized the session: the credential that called (a shared gateway key when the
    // payer is a stream owner), as go-livepeer's auth webhook's auth_id.
    AuthID: caller.keyId ?? caller.clientId ?? caller.accountId,
  };
}

// ---- 3. refresh: auth token and ticket params still good ----------------------------------

/** The ticket terms the orchestrator's params and the chain view give. */
export interface TicketTerms {
  snapshot: ChainSnapshot;
  authToken: AuthTokenMessage;
  expirationBlock: bigint;
  faceValue: bigint;
  winProb: bigint;
  /** faceValue × winProb / 2²⁵⁶: what one ticket is worth. */
  ev: Rational;
}

/**
 * An expiring auth token or ticket params → 480 (go-livepeer server/broadcast.go
 * shouldRefreshSession). The token is due once now is after expiration − 180 s, compared to
 * the millisecond as Go's time.After does.
 */
export function checkRefresh(
  snapshot: ChainSnapshot | null,
  config: Config['signer']['remote'],
  offer: Offer,
  now: Date,
): TicketTerms {
  if (snapshot === null) throw new SignerNotReady('The signer has not read the chain yet');
  const authToken = offer.info.authToken;
  if (authToken === null) throw new BadSignerRequest('missing auth token');
  if (BigInt(now.getTime()) > (authToken.expiration - AUTH_TOKEN_REFRESH_SECONDS) * 1000n) {
    throw new RefreshSession('auth token expired or about to expire', offer.info.transcoder);
  }
  const terms: TicketTerms = {
    snapshot,
    authToken,
    expirationBlock: offer.expirationBlock,
    faceValue: offer.faceValue,
    winProb: offer.winProb,
    ev: offer.ev,
  };
  if (paramsExpired(snapshot, terms)) {
    throw new RefreshSession('ticket params expired', offer.info.transcoder);
  }
  // The same refresh check validates the params for one ticket (pm/sender.go
  // ValidateTicketParams); any other failure there is go-livepeer's 400.
  const single = ticketParamsProblem(config, terms, 1n);
  if (single !== null) {
    throw new BadSignerRequest(
      `remote signer could not check whether to refresh session: ${single}`,
    );
  }
  return terms;
}

// ---- 4. billable units --------------------------------------------------------------------

/**
 * What this payment pays for, in the job type's unit. go-livepeer preloads (60 s lv2v, 10 s
 * live) whenever the time since LastUpdate is not positive: on the first call (zero
 * LastUpdate) and when the clock went backwards (another replica's clock ahead of this one's).
 */
export function billableUnits(
  type: JobType,
  session: Session,
  inPixels: bigint,
  now: Date,
): bigint {
  const sinceMs = now.getTime() - session.state.LastUpdate.getTime();
  const preload = !session.resumed || sinceMs < 0;
  // go-livepeer measures elapsed time in nanoseconds, so it is never zero there; at our
  // millisecond resolution two calls can share a timestamp: count at least 1 ms.
  const elapsedMs = Math.max(1, sinceMs);
  let units: bigint;
  if (type === 'lv2v') {
    const ms = preload ? FIRST_CALL_LV2V_SECONDS * 1000 : elapsedMs;
    units = (LV2V_PIXELS_PER_SECOND * BigInt(ms)) / 1000n;
  } else if (type === 'live') {
    units = preload ? FIRST_CALL_LIVE_SECONDS : BigInt(Math.ceil(elapsedMs / 1000));
  } else if (type === 'fixed') {
    units = 1n;
  } else {
    units = inPixels;
  }
  if (units <= 0n) throw new BadSignerRequest('no billable units: inPixels must be positive');
  return units;
}

// ---- 5. price ceilings --------------------------------------------------------------------

export interface Prices {
  /** The orchestrator's price now, wei per pixel (or per unit of the job type). */
  orchestrator: Rational;
  /** The price the session began at: what every payment of the session is charged. */
  initial: Rational;
}

/**
 * The orchestrator's price against every ceiling: the configured maximum, the request's
 * maxPrice, the session's initial price → 481. server/remote_signer.go
 * checkRemotePaymentPrice: the lowest ceiling decides, and the message names it with both
 * prices to 3 decimals.
 */
export function checkPriceCeilings(
  config: Config['signer']['remote'],
  request: LivePaymentRequest,
  offer: Offer,
  session: Session,
): Prices {
  const { state } = session;
  const orchestrator = Q.rat(offer.price.pricePerUnit, offer.price.pixelsPerUnit);
  const initial = Q.rat(state.InitialPricePerUnit, state.InitialPixelsPerUnit);
  const ceilings: Array<[string, Rational]> = [];
  if (config.maxPricePerUnitWei > 0n) {
    ceilings.push([
      'configured maximum price',
      Q.rat(config.maxPricePerUnitWei, config.maxPricePixelsPerUnit),
    ]);
  }
  if (request.maxPrice !== null) {
    const expected = MAX_PRICE_UNIT[offer.type];
    if (expected === null) {
      throw new BadSignerRequest('maxPrice requires payment type live, lv2v or fixed');
    }
    if (request.maxPrice.unit !== expected) {
      throw new BadSignerRequest(
        `maxPrice.unit must be ${expected} for payment type ${offer.type}`,
      );
    }
    ceilings.push(['request maxPrice', request.maxPrice.price]);
  }
  if (session.resumed) ceilings.push(['initial session price', initial]);
  const lowest = ceilings.reduce<[string, Rational] | null>(
    (low, c) => (low === null || Q.cmp(c[1], low[1]) < 0 ? c : low),
    null,
  );
  if (lowest !== null && Q.cmp(orchestrator, lowest[1]) > 0) {
    throw new PriceExceeded(
      `orchestrator price ${Q.floatString(orchestrator, 3)} exceeds ${lowest[0]} ceiling ${Q.floatString(lowest[1], 3)}`,
    );
  }
  return { orchestrator, initial };
}

// ---- 6. how many tickets ------------------------------------------------------------------

export interface TicketCount {
  /** units × the session's initial price. */
  fee: Rational;
  numTickets: bigint;
}

/** Fee, expected value and existing credit → 482 (credit covers it) or the ticket count. */
export function countTickets(
  units: bigint,
  prices: Prices,
  credit: Rational,
  ev: Rational,
): TicketCount {
  const fee = Q.mulInt(prices.initial, units);
  if (ev.num === 0n) throw new BadSignerRequest('ticket expected value is zero');
  const minCredit = Q.max(fee, ev);
  if (Q.cmp(credit, minCredit) >= 0) throw new NoTicketsNeeded();
  const numTickets = Q.ceilDivSub(minCredit, credit, ev);
  if (numTickets > MAX_TICKETS_PER_CALL) {
    throw new BadSignerRequest(
      `too many tickets: ${numTickets} needed, at most ${MAX_TICKETS_PER_CALL} per payment`,
    );
  }
  return { fee, numTickets };
}

// ---- 7. the sender checks -----------------------------------------------------------------

/**
 * A price that more than doubled since the session began → 481; then the batch is checked
 * for its size (pm/sender.go CreateTicketBatch): a failure there is go-livepeer's 500 with the
 * reason.
 */
export function checkSender(
  config: Config['signer']['remote'],
  terms: TicketTerms,
  prices: Prices,
  numTickets: bigint,
): void {
  if (Q.cmp(prices.orchestrator, Q.mul(prices.initial, Q.rat(2n))) > 0) {
    throw new PriceExceeded('orchestrator price more than doubled since the session began');
  }
  const problem = ticketParamsProblem(config, terms, numTickets);
  if (problem !== null) throw new SenderCheckFailed(problem);
}

/**
 * pm/sender.go validateTicketParams' expiry test: within paramsExpiryBuffer (1) L1 block of the
 * expiration block. A zero expiration block is not "expired" (no refresh) but refused below.
 */
function paramsExpired(snapshot: ChainSnapshot, terms: Pick<TicketTerms, 'expirationBlock'>) {
  return terms.expirationBlock !== 0n && terms.expirationBlock - snapshot.l1BlockNumber <= 1n;
}

/**
 * pm/sender.go validateTicketParams (go-livepeer at its current head) for `numTickets`
 * tickets, item by item in its order and with its messages; null when acceptable:
 * a zero expiration block; expired params; a zero EV accepts (go-livepeer returns nil there;
 * tollhouse refuses a zero EV before this runs); EV ≥ face value; EV > max ticket EV;
 * validateSender (unlock soon, no reserve, no deposit); total EV > max total EV; face value
 * > deposit / depositMultiplier.
 */
export function ticketParamsProblem(
  config: Config['signer']['remote'],
  terms: Omit<TicketTerms, 'authToken' | 'winProb'>,
  numTickets: bigint,
): string | null {
  const { snapshot, ev, faceValue } = terms;
  if (terms.expirationBlock === 0n) return 'ticketParams expiration block is 0';
  if (paramsExpired(snapshot, terms)) return 'TicketParams expired';
  if (ev.num <= 0n) return null;
  if (Q.cmp(ev, Q.rat(faceValue)) >= 0) return `ticket faceValue too low faceValue=${faceValue}`;
  if (Q.cmp(ev, Q.rat(config.maxTicketEvWei)) > 0) {
    return `ticket EV ${Q.floatString(ev, 5)} > max ticket EV ${Q.floatString(Q.rat(config.maxTicketEvWei), 5)}`;
  }
  const sender = snapshot.sender;
  // validateSender: WithdrawRound ≠ 0 and not after lastInitializedRound + 1.
  if (sender.withdrawRound !== 0n && sender.withdrawRound <= snapshot.lastInitializedRound + 1n) {
    return 'unable to validate sender: deposit and reserve is set to unlock soon';
  }
  if (sender.reserveWei === 0n) return 'no sender reserve';
  if (sender.depositWei === 0n) return 'no sender deposit';
  const total = Q.mulInt(ev, numTickets);
  if (Q.cmp(total, Q.rat(config.maxTotalEvWei)) > 0) {
    return `total ticket EV ${Q.floatString(total, 5)} for ${numTickets} tickets > max total ticket EV ${Q.floatString(Q.rat(config.maxTotalEvWei), 5)}`;
  }
  const maxFaceValue = sender.depositWei / config.depositMultiplier;
  if (faceValue > maxFaceValue)
    return `ticket faceValue ${faceValue} > max faceValue ${maxFaceValue}`;
  return null;
}

// ---- 8. the tickets -----------------------------------------------------------------------

export interface Tickets {
  expiration: ExpirationParamsMessage;
  /** One per ticket, consecutive after the session's last. */
  nonces: bigint[];
  /** What each ticket's signature covers (the TicketBroker's getTicketHash). */
  hashes: Uint8Array[];
}

/**
 * What makeTickets derives from the offer's ticket params, the chain view and the sender:
 * the expiration params and the ticket hasher (packed bytes laid out once). Kept per params
 * object (a stream's offer is cached, ./routes.ts and OfferCache) and rebuilt when the chain
 * view or the sender changes.
 */
interface TicketPlan {
  snapshot: ChainSnapshot;
  sender: Uint8Array;
  expiration: ExpirationParamsMessage;
  hash: (senderNonce: bigint) => Uint8Array;
}
export type TicketPlanCache = WeakMap<TicketParamsMessage, TicketPlan>;

export function createTicketPlanCache(): TicketPlanCache {
  return new WeakMap();
}

function ticketPlan(offer: Offer, terms: TicketTerms, sender: Uint8Array): TicketPlan {
  const { params } = offer;
  const given = params.expirationParams;
  const usesGiven =
    given !== null &&
    given.creationRound !== 0n &&
    given.creationRoundBlockHash.some((b) => b !== 0);
  const expiration = usesGiven
    ? given
    : {
        creationRound: terms.snapshot.lastInitializedRound,
        creationRoundBlockHash: getBytes(terms.snapshot.lastInitializedRoundBlockHash),
      };
  const hash = ticketHasher({
    recipient: params.recipient,
    sender,
    faceValue: terms.faceValue,
    winProb: terms.winProb,
    recipientRandHash: params.recipientRandHash,
    auxData: auxData(expiration.creationRound, expiration.creationRoundBlockHash),
  });
  return { snapshot: terms.snapshot, sender, expiration, hash };
}

/**
 * `numTickets` tickets after the session's last nonce (a new recipientRandHash starts over
 * at 1), in the orchestrator's round if its params name one, else the last initialized.
 * `cache` keeps the plan per offer (see TicketPlan); the terms' face value and win
 * probability are the offer's, so the params and the snapshot decide the plan.
 */
export function makeTickets(
  offer: Offer,
  terms: TicketTerms,
  session: Session,
  sender: Uint8Array,
  numTickets: bigint,
  cache?: TicketPlanCache,
): Tickets {
  let plan = cache?.get(offer.params);
  if (
    plan === undefined ||
    plan.snapshot !== terms.snapshot ||
    (plan.sender !== sender && !sameBytes(plan.sender, sender))
  ) {
    plan = ticketPlan(offer, terms, sender);
    cache?.set(offer.params, plan);
  }
  let nonce =
    session.state.PMSessionID === offer.recipientRandHash ? session.state.SenderNonce : 0n;
  const nonces: bigint[] = [];
  const hashes: Uint8Array[] = [];
  for (let i = 0n; i < numTickets; i++) {
    nonce += 1n;
    nonces.push(nonce);
    hashes.push(plan.hash(nonce));
  }
  return { expiration: plan.expiration, nonces, hashes };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---- 9. segCreds --------------------------------------------------------------------------

/**
 * What segCreds' signature covers (§3.3): keccak256(ManifestID ‖ seq 0 ‖ empty hash).
 * go-livepeer's broadcaster signs it with Eth.Sign, which applies EIP-191 to those 32 bytes
 * (core/broadcaster.go Sign); the orchestrator verifies the same way (core/orchestrator.go
 * VerifySig) and refuses anything else with a 403.
 */
export function segCredsDigest(manifestId: string): Uint8Array {
  const manifestBytes = toUtf8Bytes(manifestId);
  const message = new Uint8Array(manifestBytes.length + 64);
  message.set(manifestBytes, 0);
  message.set(word(0n), manifestBytes.length);
  message.set(EMPTY_HASH, manifestBytes.length + 32);
  return keccak256Bytes(message);
}

/**
 * The SegData for the empty segment, signed with `sig` (of segCredsDigest), without the
 * request's capabilities (wire.ts withCapabilities appends them): what a stream's payments
 * share while its auth token stays the same.
 */
export function encodeSegCreds(
  wire: Wire,
  manifestId: string,
  authToken: AuthTokenMessage | null,
  sig: Uint8Array,
): Uint8Array {
  return wire.encodeSegData({
    manifestId: toUtf8Bytes(manifestId),
    seq: 0n,
    hash: EMPTY_HASH,
    sig,
    authToken,
    capabilities: null,
  });
}

// ---- 10. the next state -------------------------------------------------------------------

/** The state handed back: credit + the tickets' value − the fee, and the last nonce. */
export function nextState(
  session: Session,
  offer: Offer,
  terms: TicketTerms,
  count: TicketCount,
  tickets: Tickets,
  now: Date,
): PaymentState {
  const credit = session.state.Balance;
  const value = Q.mulInt(terms.ev, count.numTickets);
  return {
    ...session.state,
    Balance: Q.addSub(credit, value, count.fee),
    LastUpdate: now,
    PMSessionID: offer.recipientRandHash,
    SenderNonce: tickets.nonces.at(-1) ?? session.state.SenderNonce,
  };
}

// ---- 11. the usage event ------------------------------------------------------------------

/**
 * The payment's usage event. The fee is the exact rational units × InitialPricePerUnit /
 * InitialPixelsPerUnit rounded up once (feeWei); the event id is the state and sequence
 * number, so a payment is metered once whatever retries.
 */
export function paymentUsageEvent(args: {
  payer: Payer;
  attribution: Attribution | undefined;
  session: Session;
  offer: Offer;
  terms: TicketTerms;
  units: bigint;
  numTickets: bigint;
  now: Date;
}): UsageEvent {
  const { payer, session, offer, units, numTickets } = args;
  const { principal, caller } = payer;
  const { state, manifestId } = session;
  const type = offer.type;
  const totalEv = Q.mulInt(args.terms.ev, numTickets);
  const streamId = args.attribution?.streamId;
  return {
    source: 'tollhouse/signer',
    eventId: `${state.StateID}:${state.SequenceNumber}`,
    occurredAt: args.now,
    accountId: principal.accountId,
    appId: principal.appId,
    keyId: principal.keyId,
    clientId: principal.clientId,
    endUserId: principal.endUserId,
    pipeline: PIPELINE[type],
    modelId: null,
    unit: UNIT[type],
    quantity: units,
    feeWei: feeWei(units, state.InitialPricePerUnit, state.InitialPixelsPerUnit),
    status: 200,
    latencyMs: null,
    attributes: {
      tickets: Number(numTickets),
      ev: Q.ratString(totalEv),
      evWei: Q.ceil(totalEv).toString(),
      manifestId,
      orchestratorAddress: offer.orchestratorAddress,
      orchestratorUrl: offer.info.transcoder,
      stateId: state.StateID,
      sequenceNumber: state.SequenceNumber.toString(),
      authId: state.AuthID,
      app: state.App,
      type,
      ...(streamId == null
        ? {}
        : {
            streamId,
            callerKeyId: caller.keyId,
            callerClientId: caller.clientId,
            callerAccountId: caller.accountId,
          }),
    },
  };
}
