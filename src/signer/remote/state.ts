// The opaque state a gateway carries between payments (LIVEPEER.md §2.2): go-livepeer's
// RemotePaymentState as Go's encoding/json writes it — Go field names, in declaration order,
// no tags; times RFC 3339 with nanoseconds (trailing zeros trimmed, as Go does); Balance a
// big.Rat RatString. The signer signs these exact bytes and verifies them on the way back.
import { parseRat, ratString } from './rational.ts';
import type { Rational } from './rational.ts';

export interface PaymentState {
  StateID: string;
  /** recipientRandHash of the ticket params last paid, 0x-prefixed lowercase hex. */
  PMSessionID: string;
  LastUpdate: Date;
  /** 0x-prefixed lowercase hex, as Go's common.Address marshals. */
  OrchestratorAddress: string;
  App: string;
  AuthExpiry: bigint;
  SenderNonce: bigint;
  Balance: Rational;
  InitialPricePerUnit: bigint;
  InitialPixelsPerUnit: bigint;
  Type: string;
  SequenceNumber: bigint;
  AuthID: string;
}

/** Go's time.Time.MarshalJSON (RFC3339Nano): fraction without trailing zeros, none if zero. */
export function goTime(date: Date): string {
  // toISOString has exactly three fraction digits: trim by the milliseconds' trailing zeros.
  const iso = date.toISOString();
  const ms = date.getUTCMilliseconds();
  if (ms === 0) return `${iso.slice(0, -5)}Z`;
  if (ms % 100 === 0) return `${iso.slice(0, -3)}Z`;
  if (ms % 10 === 0) return `${iso.slice(0, -2)}Z`;
  return iso;
}

const ENCODER = new TextEncoder();

export function encodeState(s: PaymentState): Uint8Array {
  const q = JSON.stringify;
  const json =
    `{"StateID":${q(s.StateID)},"PMSessionID":${q(s.PMSessionID)},` +
    `"LastUpdate":${q(goTime(s.LastUpdate))},"OrchestratorAddress":${q(s.OrchestratorAddress)},` +
    `"App":${q(s.App)},"AuthExpiry":${s.AuthExpiry},"SenderNonce":${s.SenderNonce},` +
    `"Balance":${q(ratString(s.Balance))},"InitialPricePerUnit":${s.InitialPricePerUnit},` +
    `"InitialPixelsPerUnit":${s.InitialPixelsPerUnit},"Type":${q(s.Type)},` +
    `"SequenceNumber":${s.SequenceNumber},"AuthID":${q(s.AuthID)}}`;
  return ENCODER.encode(json);
}

const INT = /^-?\d{1,20}$/;
const UINT32_MAX = 0xffffffffn;
const UINT64_MAX = (1n << 64n) - 1n;
const INT64_MAX = (1n << 63n) - 1n;

/** Parses state bytes (already signature-checked); null when they are not a valid state. */
export function decodeState(bytes: Uint8Array): PaymentState | null {
  let raw: unknown;
  try {
    // The reviver's `context.source` (Node ≥ 21) keeps 64-bit integers exact.
    raw = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(bytes),
      (_key, value: unknown, context?: { source?: string }) =>
        typeof value === 'number' && context?.source !== undefined && INT.test(context.source)
          ? BigInt(context.source)
          : value,
    );
  } catch {
    return null;
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return null;
  const o = raw as Record<string, unknown>;
  const str = (k: string) => (typeof o[k] === 'string' ? o[k] : null);
  const int = (k: string, min: bigint, max: bigint) => {
    const v = o[k];
    return typeof v === 'bigint' && v >= min && v <= max ? v : null;
  };
  const lastUpdate = str('LastUpdate');
  const time = lastUpdate === null ? NaN : Date.parse(lastUpdate);
  const balance = str('Balance') === null ? null : parseRat(str('Balance')!);
  const fields = {
    StateID: str('StateID'),
    PMSessionID: str('PMSessionID'),
    OrchestratorAddress: str('OrchestratorAddress'),
    App: str('App'),
    AuthExpiry: int('AuthExpiry', -INT64_MAX - 1n, INT64_MAX),
    SenderNonce: int('SenderNonce', 0n, UINT32_MAX),
    InitialPricePerUnit: int('InitialPricePerUnit', 1n, INT64_MAX),
    InitialPixelsPerUnit: int('InitialPixelsPerUnit', 1n, INT64_MAX),
    Type: str('Type'),
    SequenceNumber: int('SequenceNumber', 0n, UINT64_MAX),
    AuthID: str('AuthID'),
  };
  if (Number.isNaN(time) || balance === null) return null;
  for (const value of Object.values(fields)) if (value === null) return null;
  return {
    ...(fields as Omit<PaymentState, 'LastUpdate' | 'Balance'>),
    LastUpdate: new Date(time),
    Balance: balance,
  };
}
