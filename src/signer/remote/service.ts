// The remote-signer protocol's rules (LIVEPEER.md §2.2, §3.3, §3.4), in go-livepeer's order,
// with what go-livepeer's signer does not do: the caller is authorized before this runs (see
// ./routes.ts), a state is accepted only once per SequenceNumber (signer_sessions), and every
// signed payment is metered — committed before the response leaves.
//
// The state's `Sig` is an HMAC-SHA256 under a subkey of TOLLHOUSE_SECRET over the signer
// address and the state JSON, where go-livepeer's signer uses an EIP-191 signature by its
// Ethereum key. The state is opaque to gateways ("store it, send it back, do not modify it":
// go-livepeer doc/signer-protocol.md) and only tollhouse replicas — which share the secret —
// verify it, so the MAC protects it as well, costs a few microseconds instead of a secp256k1
// signature (half of a one-ticket payment's signing), and keeps the Ethereum key for tickets.
// The address is in the MAC so that a new keystore invalidates old states, as a new key
// would in go-livepeer (their balances are credit with the old sender).
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { getBytes, hexlify, toUtf8Bytes } from 'ethers';
import { keccak256Bytes } from '../keccak.ts';
import type { Kysely } from 'kysely';
import type { Config } from '../../config.ts';
import type { Recorder, UsageEvent } from '../../metering/index.ts';
import type { Principal } from '../../platform/auth.ts';
import type { Database } from '../../database.ts';
import type { Logger } from '../../platform/log.ts';
import type { Secrets } from '../../platform/secrets.ts';
import { feeWei } from '../../platform/money.ts';
import type { ChainSnapshot } from '../chain.ts';
import type { PaymentSigner } from '../service.ts';
import {
  BadSignerRequest,
  NoTicketsNeeded,
  PriceExceeded,
  RefreshSession,
  SenderCheckFailed,
  SignerNotReady,
  StaleState,
} from './errors.ts';
import { createClaimWriter } from './claims.ts';
import { findSessionByStateId } from './queries.ts';
import type { SessionRow } from './queries.ts';
import * as Q from './rational.ts';
import type { Rational } from './rational.ts';
import { decodeState, encodeState } from './state.ts';
import type { PaymentState } from './state.ts';
import { auxData, expectedValue, ticketHash, toBigInt, word } from './ticket.ts';
import type { OrchestratorInfoMessage, Wire } from './wire.ts';

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

export interface LivePaymentResponse {
  payment: Uint8Array;
  segCreds: Uint8Array;
  state: { state: Uint8Array; sig: Uint8Array };
}

export interface RemoteSignerService {
  signOrchestratorInfo(): Promise<{ address: string; signature: string }>;
  /**
   * `principal` pays (metered, owns the session); `attribution` says who called when that is
   * someone else (a shared gateway credential paying for a stream's owner).
   */
  generateLivePayment(
    principal: Principal,
    request: LivePaymentRequest,
    attribution?: Attribution,
  ): Promise<LivePaymentResponse>;
}

export interface RemoteSignerDeps {
  db: Kysely<Database>;
  log: Logger;
  config: Config['signer']['remote'];
  paymentSigner: () => PaymentSigner | null;
  snapshot: () => ChainSnapshot | null;
  recorder: Pick<Recorder, 'recordNow'>;
  wire: Wire;
  secrets: Pick<Secrets, 'hmacBytes'>;
  clock?: () => Date;
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
// Live streams a replica serves at once, with room to spare (~100 bytes each).
const SEG_SIGNATURE_CACHE = 10_000;
const SESSION_CACHE = 10_000;
const EMPTY_HASH = keccak256Bytes(new Uint8Array(0));
const STATE_MAC_PURPOSE = 'signer-state';

export function createRemoteSignerService(deps: RemoteSignerDeps): RemoteSignerService {
  const { db, config, wire } = deps;
  const clock = deps.clock ?? (() => new Date());
  const claims = createClaimWriter({ db, recorder: deps.recorder, log: deps.log });

  // The states this replica handed out last, by their digest sha256(State ‖ Sig), with the
  // session row as written then: the next payment of a stream (every few seconds, usually to
  // the same replica) presents exactly those bytes and needs no read, no parse and no
  // signature recovery. Bounded like the map below.
  const handedOut = new Map<string, { row: SessionRow; state: PaymentState }>();
  const remember = (
    replaced: string | null,
    digest: string,
    entry: { row: SessionRow; state: PaymentState },
  ) => {
    if (replaced !== null) handedOut.delete(replaced);
    if (handedOut.size >= SESSION_CACHE) handedOut.clear();
    handedOut.set(digest, entry);
  };

  // The segCreds signature covers only the ManifestID (seq 0, empty hash) and is deterministic
  // (RFC 6979), so it is computed once per stream: one signature fewer per payment.
  const segSignatures = new Map<string, Uint8Array>();
  const segSignature = async (s: PaymentSigner, manifestId: string, message: Uint8Array) => {
    const known = segSignatures.get(manifestId);
    if (known !== undefined) return known;
    const sig = s.signMessage(message);
    // Bounded: at most SEG_SIGNATURE_CACHE streams are remembered, then the map starts over.
    if (segSignatures.size >= SEG_SIGNATURE_CACHE) segSignatures.clear();
    segSignatures.set(manifestId, sig);
    return sig;
  };

  const signer = () => {
    const s = deps.paymentSigner();
    if (s === null) throw new SignerNotReady('The payment signer has no keystore');
    return s;
  };
  /** `sender`: the signer address as 20 bytes. */
  const sealState = (sender: Uint8Array, state: Uint8Array): Uint8Array =>
    deps.secrets.hmacBytes(STATE_MAC_PURPOSE, [sender, state]);
  const sealed = (sender: Uint8Array, state: Uint8Array, sig: Uint8Array): boolean =>
    sig.length === 32 && timingSafeEqual(sealState(sender, state), sig);

  return {
    async signOrchestratorInfo() {
      const s = signer();
      // EIP-191 over the 32 bytes keccak256(utf8(checksummed address)) (LIVEPEER.md §2.1).
      const signature = hexlify(s.signMessage(keccak256Bytes(toUtf8Bytes(s.address))));
      return { address: s.address, signature };
    },

    async generateLivePayment(principal, request, attribution) {
      const caller = attribution?.caller ?? principal;
      const s = signer();
      const sender = getBytes(s.address);
      const now = clock();

      // 1. Decode the orchestrator info.
      if (request.orchestrator.length === 0) throw new BadSignerRequest('missing orchestrator');
      let info: OrchestratorInfoMessage;
      try {
        info = wire.decodeOrchestratorInfo(request.orchestrator);
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
      if (!(JOB_TYPES as readonly string[]).includes(request.type)) {
        throw new BadSignerRequest('invalid job type');
      }
      const type = request.type as JobType;
      if (request.capabilities !== null) {
        try {
          wire.checkCapabilities(request.capabilities);
        } catch {
          throw new BadSignerRequest('invalid capabilities');
        }
      }
      const orchestratorAddress = hexlify(info.address).toLowerCase();
      const recipientRandHash = hexlify(params.recipientRandHash);

      // 2. Verify and parse the state, or start a new one.
      let state: PaymentState;
      let previous: { seq: bigint; stateDigest: string } | null = null;
      const hasState = request.state.state !== null && request.state.state.length > 0;
      if (hasState) {
        const bytes = request.state.state!;
        const sig = request.state.sig ?? new Uint8Array(0);
        const digest = stateDigest(bytes, sig);
        // The state this replica handed out last for its StateID is ours and current (the
        // claim below still checks that atomically, for other replicas); anything else is
        // parsed, read, and gets the MAC check. A state whose digest is the session's last is
        // current whatever its Sig: that is how states sealed by an older version (EIP-191
        // signatures) stay valid across an upgrade.
        const remembered = handedOut.get(digest);
        const parsed = remembered?.state ?? decodeState(bytes);
        const session =
          remembered?.row ??
          (parsed === null ? null : await findSessionByStateId(db, parsed.StateID));
        const current = session !== null && session.lastStateDigest === digest;
        if (!current && !sealed(sender, bytes, sig)) throw new BadSignerRequest('invalid sig');
        if (parsed === null) throw new BadSignerRequest('invalid state');
        if (request.manifestId === '') throw new BadSignerRequest('missing manifestID');
        if (parsed.OrchestratorAddress !== orchestratorAddress) {
          throw new BadSignerRequest('orchestratorAddress mismatch');
        }
        if (request.app !== parsed.App) throw new BadSignerRequest('app mismatch');
        // A state without a type takes the request's (go-livepeer remote_signer.go).
        if (parsed.Type !== '' && request.type !== parsed.Type) {
          throw new BadSignerRequest('job type mismatch');
        }
        previous = { seq: parsed.SequenceNumber, stateDigest: session?.lastStateDigest ?? '' };
        state = { ...parsed, Type: request.type, SequenceNumber: parsed.SequenceNumber + 1n };
        // Replay and ownership, read early for a clear refusal; enforced atomically below.
        if (session === null) throw new StaleState('unknown StateID');
        if (session.accountId !== principal.accountId) {
          throw new StaleState('this state belongs to another account', 403);
        }
        if (session.lastSeq >= state.SequenceNumber) {
          throw new StaleState(
            `state replayed: SequenceNumber ${parsed.SequenceNumber} was already used; send the state of the last response`,
          );
        }
      } else {
        state = {
          StateID: randomUUID(),
          PMSessionID: recipientRandHash,
          LastUpdate: now,
          OrchestratorAddress: orchestratorAddress,
          App: request.app,
          AuthExpiry: 0n,
          SenderNonce: 0n,
          Balance: Q.ZERO,
          InitialPricePerUnit: price.pricePerUnit,
          InitialPixelsPerUnit: price.pixelsPerUnit,
          Type: type,
          SequenceNumber: 0n,
          // Who authorized the session: the credential that called (a shared gateway key
          // when the payer is a stream owner), as go-livepeer's auth webhook's auth_id.
          AuthID: caller.keyId ?? caller.clientId ?? caller.accountId,
        };
      }
      const manifestId =
        request.manifestId !== '' ? request.manifestId : randomBytes(8).toString('hex');

      // 3. Existing credit and the nonce (a new recipientRandHash starts over).
      const credit = state.Balance;
      let nonce = state.PMSessionID === recipientRandHash ? state.SenderNonce : 0n;

      // 4. Refresh: an expiring auth token or ticket params → 480 (go-livepeer
      // server/broadcast.go shouldRefreshSession). The token is due once now is after
      // expiration − 180 s, compared to the millisecond as Go's time.After does.
      const snapshot = deps.snapshot();
      if (snapshot === null) throw new SignerNotReady('The signer has not read the chain yet');
      const auth = info.authToken;
      if (auth === null) throw new BadSignerRequest('missing auth token');
      if (BigInt(now.getTime()) > (auth.expiration - AUTH_TOKEN_REFRESH_SECONDS) * 1000n) {
        throw new RefreshSession('auth token expired or about to expire', info.transcoder);
      }
      const expirationBlock = toBigInt(params.expirationBlock);
      const faceValue = toBigInt(params.faceValue);
      const winProb = toBigInt(params.winProb);
      const ev = expectedValue(faceValue, winProb);
      const checked = { expirationBlock, faceValue, ev };
      if (paramsExpired(snapshot, checked)) {
        throw new RefreshSession('ticket params expired', info.transcoder);
      }
      // The same refresh check validates the params for one ticket (pm/sender.go
      // ValidateTicketParams); any other failure there is go-livepeer's 400.
      const single = ticketParamsProblem(snapshot, config, { ...checked, numTickets: 1n });
      if (single !== null) {
        throw new BadSignerRequest(
          `remote signer could not check whether to refresh session: ${single}`,
        );
      }

      // 5. Billable units. go-livepeer preloads (60 s lv2v, 10 s live) whenever the time
      // since LastUpdate is not positive: on the first call (zero LastUpdate) and when the
      // clock went backwards (another replica's clock ahead of this one's).
      const sinceMs = now.getTime() - state.LastUpdate.getTime();
      const preload = !hasState || sinceMs < 0;
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
        units = request.inPixels;
      }
      if (units <= 0n) throw new BadSignerRequest('no billable units: inPixels must be positive');

      // 6. Price ceilings → 481.
      const orchestratorPrice = Q.rat(price.pricePerUnit, price.pixelsPerUnit);
      const initialPrice = Q.rat(state.InitialPricePerUnit, state.InitialPixelsPerUnit);
      const ceilings: Array<[string, Rational]> = [];
      if (config.maxPricePerUnitWei > 0n) {
        ceilings.push([
          'configured maximum price',
          Q.rat(config.maxPricePerUnitWei, config.maxPricePixelsPerUnit),
        ]);
      }
      if (request.maxPrice !== null) {
        const expected = MAX_PRICE_UNIT[type];
        if (expected === null) {
          throw new BadSignerRequest('maxPrice requires payment type live, lv2v or fixed');
        }
        if (request.maxPrice.unit !== expected) {
          throw new BadSignerRequest(`maxPrice.unit must be ${expected} for payment type ${type}`);
        }
        ceilings.push(['request maxPrice', request.maxPrice.price]);
      }
      if (hasState) ceilings.push(['initial session price', initialPrice]);
      // server/remote_signer.go checkRemotePaymentPrice: the lowest ceiling decides, and the
      // message names it with both prices to 3 decimals.
      const lowest = ceilings.reduce<[string, Rational] | null>(
        (low, c) => (low === null || Q.cmp(c[1], low[1]) < 0 ? c : low),
        null,
      );
      if (lowest !== null && Q.cmp(orchestratorPrice, lowest[1]) > 0) {
        throw new PriceExceeded(
          `orchestrator price ${Q.floatString(orchestratorPrice, 3)} exceeds ${lowest[0]} ceiling ${Q.floatString(lowest[1], 3)}`,
        );
      }

      // 7. Fee, expected value, credit → 482 or the number of tickets.
      const fee = Q.mul(Q.rat(units), initialPrice);
      if (ev.num === 0n) throw new BadSignerRequest('ticket expected value is zero');
      const minCredit = Q.max(fee, ev);
      if (Q.cmp(credit, minCredit) >= 0) throw new NoTicketsNeeded();
      const numTickets = Q.ceil(Q.div(Q.sub(minCredit, credit), ev));
      if (numTickets > MAX_TICKETS_PER_CALL) {
        throw new BadSignerRequest(
          `too many tickets: ${numTickets} needed, at most ${MAX_TICKETS_PER_CALL} per payment`,
        );
      }

      // 8. A price that more than doubled since the session began → 481; then the sender checks.
      if (Q.cmp(orchestratorPrice, Q.mul(initialPrice, Q.rat(2n))) > 0) {
        throw new PriceExceeded('orchestrator price more than doubled since the session began');
      }
      // The batch is checked again for its size (pm/sender.go CreateTicketBatch): a failure
      // here is go-livepeer's 500 with the reason.
      const batchProblem = ticketParamsProblem(snapshot, config, { ...checked, numTickets });
      if (batchProblem !== null) throw new SenderCheckFailed(batchProblem);

      // Tickets: the orchestrator's round if its params name one, else the last initialized.
      const given = params.expirationParams;
      const usesGiven =
        given !== null &&
        given.creationRound !== 0n &&
        given.creationRoundBlockHash.some((b) => b !== 0);
      const expiration = usesGiven
        ? given
        : {
            creationRound: snapshot.lastInitializedRound,
            creationRoundBlockHash: getBytes(snapshot.lastInitializedRoundBlockHash),
          };
      const aux = auxData(expiration.creationRound, expiration.creationRoundBlockHash);
      const nonces: bigint[] = [];
      const ticketHashes: Uint8Array[] = [];
      for (let i = 0n; i < numTickets; i++) {
        nonce += 1n;
        nonces.push(nonce);
        const hash = ticketHash({
          recipient: params.recipient,
          sender,
          faceValue,
          winProb,
          senderNonce: nonce,
          recipientRandHash: params.recipientRandHash,
          auxData: aux,
        });
        ticketHashes.push(hash);
      }

      // 9. segCreds for the empty segment (§3.3).
      const manifestBytes = toUtf8Bytes(manifestId);
      const segMessage = new Uint8Array(manifestBytes.length + 64);
      segMessage.set(manifestBytes, 0);
      segMessage.set(word(0n), manifestBytes.length);
      segMessage.set(EMPTY_HASH, manifestBytes.length + 32);
      const segCreds = wire.encodeSegData({
        manifestId: manifestBytes,
        seq: 0n,
        hash: EMPTY_HASH,
        // go-livepeer's broadcaster signs keccak256(flatten) with Eth.Sign, which applies
        // EIP-191 to those 32 bytes (core/broadcaster.go Sign); the orchestrator verifies the
        // same way (core/orchestrator.go VerifySig) and refuses anything else with a 403.
        sig: await segSignature(s, manifestId, keccak256Bytes(segMessage)),
        authToken: auth,
        capabilities: request.capabilities,
      });

      const balance = Q.sub(Q.add(credit, Q.mul(Q.rat(numTickets), ev)), fee);
      const next: PaymentState = {
        ...state,
        Balance: balance,
        LastUpdate: now,
        PMSessionID: recipientRandHash,
        SenderNonce: nonce,
      };
      const stateBytes = encodeState(next);
      const signatures = await s.signMessages(ticketHashes);
      const stateSig = sealState(sender, stateBytes);
      const payment = wire.encodePayment({
        ticketParams: params,
        sender,
        expirationParams: expiration,
        ticketSenderParams: nonces.map((n, i) => ({ senderNonce: Number(n), sig: signatures[i]! })),
        expectedPrice: price,
      });

      // 11. Claim the sequence number with the new state's digest and meter the payment,
      // durably, before answering (one batched write with concurrent payments, ./claims.ts).
      // A concurrent payment with the same state loses, and what it signed is never handed
      // out. The fee is the exact rational units × InitialPricePerUnit / InitialPixelsPerUnit
      // rounded up once (feeWei).
      const totalEv = Q.mul(Q.rat(numTickets), ev);
      const digest = stateDigest(stateBytes, stateSig);
      const won = await claims.claim({
        stateId: state.StateID,
        accountId: principal.accountId,
        seq: state.SequenceNumber,
        stateDigest: digest,
        manifestId,
        orchestratorAddress,
        previous,
        event: {
          source: 'tollhouse/signer',
          eventId: `${state.StateID}:${state.SequenceNumber}`,
          occurredAt: now,
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
            orchestratorAddress,
            orchestratorUrl: info.transcoder,
            stateId: state.StateID,
            sequenceNumber: state.SequenceNumber.toString(),
            authId: state.AuthID,
            app: state.App,
            type,
            ...(attribution?.streamId == null
              ? {}
              : {
                  streamId: attribution.streamId,
                  callerKeyId: caller.keyId,
                  callerClientId: caller.clientId,
                  callerAccountId: caller.accountId,
                }),
          },
        },
      });
      if (!won) throw new StaleState('state replayed: another payment used it first');
      remember(previous?.stateDigest ?? null, digest, {
        row: {
          accountId: principal.accountId,
          lastSeq: state.SequenceNumber,
          lastStateDigest: digest,
        },
        state: next,
      });
      return { payment, segCreds, state: { state: stateBytes, sig: stateSig } };
    },
  };
}

interface CheckedParams {
  expirationBlock: bigint;
  faceValue: bigint;
  ev: Rational;
}

/**
 * pm/sender.go validateTicketParams' expiry test: within paramsExpiryBuffer (1) L1 block of the
 * expiration block. A zero expiration block is not "expired" (no refresh) but refused below.
 */
function paramsExpired(snapshot: ChainSnapshot, p: CheckedParams): boolean {
  return p.expirationBlock !== 0n && p.expirationBlock - snapshot.l1BlockNumber <= 1n;
}

/**
 * pm/sender.go validateTicketParams (go-livepeer at its current head) for `numTickets`
 * tickets, item by item in its order and with its messages; null when acceptable:
 * a zero expiration block; expired params; a zero EV accepts (go-livepeer returns nil there;
 * tollhouse refuses a zero EV before this runs); EV ≥ face value; EV > max ticket EV;
 * validateSender (unlock soon, no reserve, no deposit); total EV > max total EV; face value
 * > deposit / depositMultiplier.
 */
function ticketParamsProblem(
  snapshot: ChainSnapshot,
  config: Config['signer']['remote'],
  p: CheckedParams & { numTickets: bigint },
): string | null {
  if (p.expirationBlock === 0n) return 'ticketParams expiration block is 0';
  if (paramsExpired(snapshot, p)) return 'TicketParams expired';
  if (p.ev.num <= 0n) return null;
  if (Q.cmp(p.ev, Q.rat(p.faceValue)) >= 0)
    return `ticket faceValue too low faceValue=${p.faceValue}`;
  if (Q.cmp(p.ev, Q.rat(config.maxTicketEvWei)) > 0) {
    return `ticket EV ${Q.floatString(p.ev, 5)} > max ticket EV ${Q.floatString(Q.rat(config.maxTicketEvWei), 5)}`;
  }
  const sender = snapshot.sender;
  // validateSender: WithdrawRound ≠ 0 and not after lastInitializedRound + 1.
  if (sender.withdrawRound !== 0n && sender.withdrawRound <= snapshot.lastInitializedRound + 1n) {
    return 'unable to validate sender: deposit and reserve is set to unlock soon';
  }
  if (sender.reserveWei === 0n) return 'no sender reserve';
  if (sender.depositWei === 0n) return 'no sender deposit';
  const total = Q.mul(p.ev, Q.rat(p.numTickets));
  if (Q.cmp(total, Q.rat(config.maxTotalEvWei)) > 0) {
    return `total ticket EV ${Q.floatString(total, 5)} for ${p.numTickets} tickets > max total ticket EV ${Q.floatString(Q.rat(config.maxTotalEvWei), 5)}`;
  }
  const maxFaceValue = sender.depositWei / config.depositMultiplier;
  if (p.faceValue > maxFaceValue)
    return `ticket faceValue ${p.faceValue} > max faceValue ${maxFaceValue}`;
  return null;
}

/** sha256(State ‖ Sig), hex: the fingerprint of a state handed out (signer_sessions). */
function stateDigest(state: Uint8Array, sig: Uint8Array): string {
  return createHash('sha256').update(state).update(sig).digest('hex');
}
