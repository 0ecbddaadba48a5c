// The remote-signer protocol's rules (LIVEPEER.md §2.2, §3.3, §3.4), in go-livepeer's order
// (each a named step of ./payment.ts; generateLivePayment below runs them in turn), with what go-livepeer's signer does not do: the caller is authorized before this runs (see
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
import { getBytes, hexlify, toUtf8Bytes } from 'ethers';
import { keccak256Bytes } from '../keccak.ts';
import type { Kysely } from 'kysely';
import type { Config } from '../../config.ts';
import type { Recorder, UsageEvent } from '../../metering/index.ts';
import type { Principal } from '../../platform/auth.ts';
import type { Database } from '../../database.ts';
import type { Logger } from '../../platform/log.ts';
import type { Secrets } from '../../platform/secrets.ts';
import type { ChainSnapshot } from '../chain.ts';
import type { PaymentSigner } from '../service.ts';
import { SignerNotReady, StaleState } from './errors.ts';
import { createClaimWriter } from './claims.ts';
import {
  billableUnits,
  checkPriceCeilings,
  checkRefresh,
  checkSender,
  countTickets,
  createOfferCache,
  createTicketPlanCache,
  encodeSegCreds,
  makeTickets,
  nextState,
  paymentUsageEvent,
  readOffer,
  restoreSession,
  segCredsDigest,
} from './payment.ts';
import type {
  Attribution,
  LivePaymentRequest,
  Offer,
  Session,
  TicketCount,
  TicketTerms,
  Tickets,
} from './payment.ts';
import { createSessions, stateDigest } from './sessions.ts';
import { encodeState } from './state.ts';
import type { PaymentState } from './state.ts';
import { withCapabilities } from './wire.ts';
import type {
  AuthTokenMessage,
  ExpirationParamsMessage,
  PaymentMessage,
  PriceInfoMessage,
  TicketParamsMessage,
  Wire,
} from './wire.ts';

export { JOB_TYPES } from './payment.ts';
export type { Attribution, JobType, LivePaymentRequest } from './payment.ts';

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

// Live streams a replica serves at once, with room to spare (~300 bytes each).
const SEG_SIGNATURE_CACHE = 10_000;

export function createRemoteSignerService(deps: RemoteSignerDeps): RemoteSignerService {
  const { db, config, wire } = deps;
  const clock = deps.clock ?? (() => new Date());
  const claims = createClaimWriter({ db, recorder: deps.recorder, log: deps.log });

  const sessions = createSessions({ db, secrets: deps.secrets });
  const offers = createOfferCache();
  const plans = createTicketPlanCache();

  // segCreds cover only the ManifestID (seq 0, empty hash), their signature is deterministic
  // (RFC 6979), and the rest is the offer's auth token: so a stream's signature is made once
  // (per signer address: a new keystore signs anew) and its SegData encoded once per auth
  // token, one signature and one protobuf encoding fewer per payment.
  const segCredsCache = new Map<
    string,
    { address: string; sig: Uint8Array; authToken: AuthTokenMessage | null; head: Uint8Array }
  >();
  const segCreds = (
    s: PaymentSigner,
    manifestId: string,
    authToken: AuthTokenMessage | null,
    capabilities: Uint8Array | null,
  ) => {
    const known = segCredsCache.get(manifestId);
    const signed = known !== undefined && known.address === s.address;
    if (signed && known.authToken === authToken) {
      return withCapabilities(known.head, capabilities);
    }
    const sig = signed ? known.sig : s.signMessage(segCredsDigest(manifestId));
    const head = encodeSegCreds(wire, manifestId, authToken, sig);
    // Bounded: at most SEG_SIGNATURE_CACHE streams are remembered, then the map starts over.
    if (segCredsCache.size >= SEG_SIGNATURE_CACHE) segCredsCache.clear();
    segCredsCache.set(manifestId, { address: s.address, sig, authToken, head });
    return withCapabilities(head, capabilities);
  };

  // The Payment's fields other than the tickets, encoded once per offer (see
  // Wire.paymentEncoder); rebuilt when the sender or the expiration params change.
  const paymentEncoders = new WeakMap<
    TicketParamsMessage,
    {
      sender: Uint8Array;
      expiration: ExpirationParamsMessage;
      price: PriceInfoMessage;
      encode: (tickets: PaymentMessage['ticketSenderParams']) => Uint8Array;
    }
  >();
  const encodePayment = (fixed: Omit<PaymentMessage, 'ticketSenderParams'>) => {
    const known = paymentEncoders.get(fixed.ticketParams);
    if (
      known !== undefined &&
      known.sender === fixed.sender &&
      known.expiration === fixed.expirationParams &&
      known.price === fixed.expectedPrice
    ) {
      return known.encode;
    }
    const encode = wire.paymentEncoder(fixed);
    paymentEncoders.set(fixed.ticketParams, {
      sender: fixed.sender,
      expiration: fixed.expirationParams,
      price: fixed.expectedPrice,
      encode,
    });
    return encode;
  };

  // The signer's address as bytes, once per address (the keystore can be replaced).
  let senderBytes: { address: string; bytes: Uint8Array } | null = null;
  const senderOf = (s: PaymentSigner) => {
    if (senderBytes === null || senderBytes.address !== s.address) {
      senderBytes = { address: s.address, bytes: getBytes(s.address) };
    }
    return senderBytes.bytes;
  };

  const signer = () => {
    const s = deps.paymentSigner();
    if (s === null) throw new SignerNotReady('The payment signer has no keystore');
    return s;
  };
  const service: RemoteSignerService = {
    async signOrchestratorInfo() {
      const s = signer();
      // EIP-191 over the 32 bytes keccak256(utf8(checksummed address)) (LIVEPEER.md §2.1).
      const signature = hexlify(s.signMessage(keccak256Bytes(toUtf8Bytes(s.address))));
      return { address: s.address, signature };
    },

    async generateLivePayment(principal, request, attribution) {
      const s = signer();
      const sender = senderOf(s);
      const now = clock();
      const payer = { principal, caller: attribution?.caller ?? principal };
      const offer = readOffer(wire, request, offers);
      const session = await restoreSession(sessions.store(sender), request, offer, payer, now);
      const terms = checkRefresh(deps.snapshot(), config, offer, now);
      const units = billableUnits(offer.type, session, request.inPixels, now);
      const prices = checkPriceCeilings(config, request, offer, session);
      const count = countTickets(units, prices, session.state.Balance, terms.ev);
      checkSender(config, terms, prices, count.numTickets);
      const tickets = makeTickets(offer, terms, session, sender, count.numTickets, plans);
      const signed = await signPayment(s, sender, {
        request,
        offer,
        session,
        terms,
        count,
        tickets,
        now,
      });
      const event = paymentUsageEvent({
        payer,
        attribution,
        session,
        offer,
        terms,
        units,
        now,
        ...count,
      });
      await recordPayment(principal, offer, session, signed, event);
      return signed.response;
    },
  };

  /** Signs the tickets and segCreds and seals the next state: everything handed back. */
  async function signPayment(
    s: PaymentSigner,
    sender: Uint8Array,
    p: {
      request: LivePaymentRequest;
      offer: Offer;
      session: Session;
      terms: TicketTerms;
      count: TicketCount;
      tickets: Tickets;
      now: Date;
    },
  ): Promise<SignedPayment> {
    const seg = segCreds(s, p.session.manifestId, p.terms.authToken, p.request.capabilities);
    const next = nextState(p.session, p.offer, p.terms, p.count, p.tickets, p.now);
    const stateBytes = encodeState(next);
    const signatures = await s.signMessages(p.tickets.hashes);
    const stateSig = sessions.seal(sender, stateBytes);
    const payment = encodePayment({
      ticketParams: p.offer.params,
      sender,
      expirationParams: p.tickets.expiration,
      expectedPrice: p.offer.price,
    })(p.tickets.nonces.map((n, i) => ({ senderNonce: Number(n), sig: signatures[i]! })));
    return {
      next,
      digest: stateDigest(stateBytes, stateSig),
      response: { payment, segCreds: seg, state: { state: stateBytes, sig: stateSig } },
    };
  }

  /**
   * Claims the sequence number with the new state's digest and meters the payment, durably,
   * before answering (one batched write with concurrent payments, ./claims.ts). A concurrent
   * payment with the same state loses, and what it signed is never handed out.
   */
  async function recordPayment(
    principal: Principal,
    offer: Offer,
    session: Session,
    signed: SignedPayment,
    event: UsageEvent,
  ): Promise<void> {
    const { state } = session;
    const won = await claims.claim({
      stateId: state.StateID,
      accountId: principal.accountId,
      seq: state.SequenceNumber,
      stateDigest: signed.digest,
      manifestId: session.manifestId,
      orchestratorAddress: offer.orchestratorAddress,
      previous: session.previous,
      event,
    });
    if (!won) throw new StaleState('state replayed: another payment used it first');
    sessions.remember(session.previous?.stateDigest ?? null, signed.digest, {
      row: {
        accountId: principal.accountId,
        lastSeq: state.SequenceNumber,
        lastStateDigest: signed.digest,
      },
      state: signed.next,
    });
  }

  return service;
}

interface SignedPayment {
  /** The state handed back, and its digest (what the session row records). */
  next: PaymentState;
  digest: string;
  response: LivePaymentResponse;
}
