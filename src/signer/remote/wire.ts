// Protobuf encoding of go-livepeer's messages (livepeer.proto beside this file, LIVEPEER.md
// §3.2) with protobufjs, loaded at start-up from the .proto (reflection, no generated code).
// Decoding skips unknown fields, so newer orchestrators' info still decodes; the orchestrator
// info is only read, never re-encoded.
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';

export interface TicketParamsMessage {
  recipient: Uint8Array;
  faceValue: Uint8Array;
  winProb: Uint8Array;
  recipientRandHash: Uint8Array;
  seed: Uint8Array;
  expirationBlock: Uint8Array;
  expirationParams: ExpirationParamsMessage | null;
}

export interface ExpirationParamsMessage {
  creationRound: bigint;
  creationRoundBlockHash: Uint8Array;
}

export interface PriceInfoMessage {
  pricePerUnit: bigint;
  pixelsPerUnit: bigint;
  capability: number;
  constraint: string;
}

export interface AuthTokenMessage {
  token: Uint8Array;
  sessionId: string;
  expiration: bigint;
}

export interface OrchestratorInfoMessage {
  transcoder: string;
  ticketParams: TicketParamsMessage | null;
  priceInfo: PriceInfoMessage | null;
  address: Uint8Array;
  authToken: AuthTokenMessage | null;
}

export interface PaymentMessage {
  ticketParams: TicketParamsMessage;
  sender: Uint8Array;
  expirationParams: ExpirationParamsMessage;
  ticketSenderParams: Array<{ senderNonce: number; sig: Uint8Array }>;
  expectedPrice: PriceInfoMessage;
}

export interface SegDataMessage {
  manifestId: Uint8Array;
  seq: bigint;
  hash: Uint8Array;
  sig: Uint8Array;
  authToken: AuthTokenMessage | null;
  /** Already-encoded `Capabilities` (the request's bytes, copied as they came). */
  capabilities: Uint8Array | null;
}

export interface Wire {
  /**
   * The request's `orchestrator` bytes: a bare `OrchestratorInfo` or one wrapped in a
   * `PaymentResult` (field 16), the two encodings go-livepeer versions send (docs/signer.md).
   */
  decodeOrchestratorInfo(bytes: Uint8Array): OrchestratorInfoMessage;
  /** Checks that `bytes` is a `Capabilities` message; throws otherwise. */
  checkCapabilities(bytes: Uint8Array): void;
  encodePayment(payment: PaymentMessage): Uint8Array;
  /**
   * encodePayment for one set of the fields that do not change between payments of a stream
   * (ticket params, sender, expiration params, price): those are encoded once, and each call
   * only adds the tickets' nonces and signatures. The same bytes as encodePayment.
   */
  paymentEncoder(
    fixed: Omit<PaymentMessage, 'ticketSenderParams'>,
  ): (ticketSenderParams: PaymentMessage['ticketSenderParams']) => Uint8Array;
  encodeSegData(seg: SegDataMessage): Uint8Array;
  /** For tests and orchestrators: the generic decoders. */
  decode(
    type: 'Payment' | 'SegData' | 'OrchestratorInfo',
    bytes: Uint8Array,
  ): Record<string, unknown>;
  encode(
    type: 'OrchestratorInfo' | 'PaymentResult' | 'Capabilities',
    value: Record<string, unknown>,
  ): Uint8Array;
}

const EMPTY = new Uint8Array(0);
// protobufjs hands int64 back as a Long (the `long` package) or a number.
const int64 = (value: unknown): bigint =>
  value === undefined || value === null ? 0n : BigInt(String(value));
const bytes = (value: unknown): Uint8Array => (value instanceof Uint8Array ? value : EMPTY);

// PaymentResult.info's field number. OrchestratorInfo's fields are 1–7 and 32–34 in every
// go-livepeer version, so a length-delimited top-level field 16 marks the wrapper; a bare
// OrchestratorInfo never carries one.
const PAYMENT_RESULT_INFO_FIELD = 16;
const LENGTH_DELIMITED = 2;

/** Whether `input` has a top-level length-delimited field 16; throws on malformed protobuf. */
function isPaymentResult(input: Uint8Array): boolean {
  const reader = protobuf.Reader.create(input);
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag >>> 3 === PAYMENT_RESULT_INFO_FIELD && (tag & 7) === LENGTH_DELIMITED) return true;
    reader.skipType(tag & 7);
  }
  return false;
}

// One Payment.ticket_sender_params entry as protobufjs writes it: tag 4 (length-delimited),
// the length, then sender_nonce (tag 1, varint of the uint32) and sig (tag 2, length, bytes).
// Hand-written because it is the only part of a payment's protobuf that changes per call;
// test/signer/remote-fastpaths.test.ts compares it with protobufjs.
const varintSize = (v: number) =>
  v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;

function ticketSenderParamsBody(t: { senderNonce: number; sig: Uint8Array }): number {
  const nonce = t.senderNonce >>> 0;
  return 1 + varintSize(nonce) + 1 + varintSize(t.sig.length) + t.sig.length;
}

function ticketSenderParamsSize(t: { senderNonce: number; sig: Uint8Array }): number {
  const body = ticketSenderParamsBody(t);
  return 1 + varintSize(body) + body;
}

function writeVarint(out: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    out[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[at++] = v;
  return at;
}

function writeTicketSenderParams(
  out: Uint8Array,
  at: number,
  t: { senderNonce: number; sig: Uint8Array },
): number {
  out[at++] = (4 << 3) | 2;
  at = writeVarint(out, at, ticketSenderParamsBody(t));
  out[at++] = (1 << 3) | 0;
  at = writeVarint(out, at, t.senderNonce >>> 0);
  out[at++] = (2 << 3) | 2;
  at = writeVarint(out, at, t.sig.length);
  out.set(t.sig, at);
  return at + t.sig.length;
}

/**
 * SegData bytes without capabilities, with the request's `Capabilities` bytes appended as
 * field 7 (length-delimited) exactly as the gateway sent them (field order does not matter).
 */
export function withCapabilities(head: Uint8Array, capabilities: Uint8Array | null): Uint8Array {
  if (capabilities === null) return head;
  const tail = protobuf.Writer.create()
    .uint32((7 << 3) | 2)
    .bytes(capabilities)
    .finish();
  const out = new Uint8Array(head.length + tail.length);
  out.set(head, 0);
  out.set(tail, head.length);
  return out;
}

export function createWire(): Wire {
  const source = readFileSync(new URL('./livepeer.proto', import.meta.url), 'utf8');
  const root = protobuf.parse(source).root;
  const type = (name: string) => root.lookupType(`net.${name}`);
  const OrchestratorInfo = type('OrchestratorInfo');
  const PaymentResult = type('PaymentResult');
  const Capabilities = type('Capabilities');
  const Payment = type('Payment');
  const SegData = type('SegData');

  const expiration = (m: Record<string, unknown> | null | undefined) =>
    m == null
      ? null
      : {
          creationRound: int64(m.creationRound),
          creationRoundBlockHash: bytes(m.creationRoundBlockHash),
        };
  const ticketParams = (
    m: Record<string, unknown> | null | undefined,
  ): TicketParamsMessage | null =>
    m == null
      ? null
      : {
          recipient: bytes(m.recipient),
          faceValue: bytes(m.faceValue),
          winProb: bytes(m.winProb),
          recipientRandHash: bytes(m.recipientRandHash),
          seed: bytes(m.seed),
          expirationBlock: bytes(m.expirationBlock),
          expirationParams: expiration(m.expirationParams as Record<string, unknown> | null),
        };
  const priceOut = (p: PriceInfoMessage) => ({
    pricePerUnit: p.pricePerUnit.toString(),
    pixelsPerUnit: p.pixelsPerUnit.toString(),
    capability: p.capability,
    constraint: p.constraint,
  });
  const expirationOut = (e: ExpirationParamsMessage) => ({
    creationRound: e.creationRound.toString(),
    creationRoundBlockHash: e.creationRoundBlockHash,
  });
  const paymentOut = (p: PaymentMessage) => {
    const t = p.ticketParams;
    return {
      ticketParams: {
        ...t,
        expirationParams: t.expirationParams === null ? null : expirationOut(t.expirationParams),
      },
      sender: p.sender,
      expirationParams: expirationOut(p.expirationParams),
      ticketSenderParams: p.ticketSenderParams,
      expectedPrice: priceOut(p.expectedPrice),
    };
  };

  return {
    decodeOrchestratorInfo(input) {
      // Older go-livepeer signers decoded a PaymentResult, newer ones a bare OrchestratorInfo,
      // and gateways of both generations are deployed: accept either.
      const m = (
        isPaymentResult(input)
          ? ((PaymentResult.decode(input) as unknown as Record<string, unknown>).info ?? {})
          : OrchestratorInfo.decode(input)
      ) as Record<string, unknown>;
      const price = m.priceInfo as Record<string, unknown> | null | undefined;
      const auth = m.authToken as Record<string, unknown> | null | undefined;
      return {
        transcoder: typeof m.transcoder === 'string' ? m.transcoder : '',
        ticketParams: ticketParams(m.ticketParams as Record<string, unknown> | null),
        priceInfo:
          price == null
            ? null
            : {
                pricePerUnit: int64(price.pricePerUnit),
                pixelsPerUnit: int64(price.pixelsPerUnit),
                capability: Number(price.capability ?? 0),
                constraint: typeof price.constraint === 'string' ? price.constraint : '',
              },
        address: bytes(m.address),
        authToken:
          auth == null
            ? null
            : {
                token: bytes(auth.token),
                sessionId: typeof auth.sessionId === 'string' ? auth.sessionId : '',
                expiration: int64(auth.expiration),
              },
      };
    },
    checkCapabilities(input) {
      Capabilities.decode(input);
    },
    encodePayment: (p) => Payment.encode(paymentOut(p)).finish(),
    paymentEncoder(fixed) {
      // protobufjs writes fields in field-number order: 1–3 before the tickets (4), 5 after.
      const { expectedPrice, ...before } = paymentOut({ ...fixed, ticketSenderParams: [] });
      const head = Payment.encode(before).finish();
      const tail = Payment.encode({ expectedPrice }).finish();
      return (tickets) => {
        let size = head.length + tail.length;
        for (const t of tickets) size += ticketSenderParamsSize(t);
        const out = new Uint8Array(size);
        out.set(head, 0);
        let at = head.length;
        for (const t of tickets) at = writeTicketSenderParams(out, at, t);
        out.set(tail, at);
        return out;
      };
    },
    encodeSegData(s) {
      const head = SegData.encode({
        manifestId: s.manifestId,
        seq: s.seq.toString(),
        hash: s.hash,
        sig: s.sig,
        authToken:
          s.authToken === null
            ? null
            : { ...s.authToken, expiration: s.authToken.expiration.toString() },
      }).finish();
      return withCapabilities(head, s.capabilities);
    },
    decode(name, input) {
      const t = type(name);
      return t.toObject(t.decode(input), { longs: String, defaults: true });
    },
    encode(name, value) {
      return type(name).encode(type(name).fromObject(value)).finish();
    },
  };
}
