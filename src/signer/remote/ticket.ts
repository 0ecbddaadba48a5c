// Tickets as go-livepeer's pm package builds them (LIVEPEER.md §3.1): the packed hash the
// TicketBroker recomputes on-chain, the 64-byte auxData, and the expected value.
import { getBytes } from 'ethers';
import { keccak256Bytes } from '../keccak.ts';
import { rat } from './rational.ts';
import type { Rational } from './rational.ts';

export interface Ticket {
  /** 20 bytes each. */
  recipient: Uint8Array;
  sender: Uint8Array;
  faceValue: bigint;
  winProb: bigint;
  senderNonce: bigint;
  /** 32 bytes. */
  recipientRandHash: Uint8Array;
  auxData: Uint8Array;
}

const UINT256_MAX = (1n << 256n) - 1n;

/** uint256 as 32 big-endian bytes (abi.encodePacked of a uint256). */
export function word(value: bigint): Uint8Array {
  if (value < 0n || value > UINT256_MAX) throw new RangeError('not a uint256');
  const out = new Uint8Array(32);
  for (let i = 31; i >= 0 && value > 0n; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
}

/** Minimal big-endian bytes → bigint (protobuf big integers, LIVEPEER.md §3.2). */
export function toBigInt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  return value;
}

/** bigint → minimal big-endian bytes (0 → empty), as Go's big.Int.Bytes(). */
export function toMinimalBytes(value: bigint): Uint8Array {
  if (value === 0n) return new Uint8Array(0);
  const hex = value.toString(16);
  return getBytes(`0x${hex.length % 2 === 1 ? '0' : ''}${hex}`);
}

/** leftPad32(creationRound) ‖ blockHash; empty only when both are zero (go-livepeer pm.Ticket.AuxData). */
export function auxData(creationRound: bigint, creationRoundBlockHash: Uint8Array): Uint8Array {
  const hashIsZero = creationRoundBlockHash.every((b) => b === 0);
  if (creationRound === 0n && hashIsZero) return new Uint8Array(0);
  const out = new Uint8Array(64);
  out.set(word(creationRound), 0);
  out.set(creationRoundBlockHash.slice(0, 32), 64 - Math.min(32, creationRoundBlockHash.length));
  return out;
}

/** keccak256(abi.encodePacked(recipient, sender, faceValue, winProb, senderNonce, recipientRandHash, auxData)). */
export function ticketHash(t: Ticket): Uint8Array {
  const packed = new Uint8Array(20 + 20 + 32 * 4 + t.auxData.length);
  packed.set(t.recipient, 0);
  packed.set(t.sender, 20);
  packed.set(word(t.faceValue), 40);
  packed.set(word(t.winProb), 72);
  packed.set(word(t.senderNonce), 104);
  packed.set(t.recipientRandHash, 136);
  packed.set(t.auxData, 168);
  return keccak256Bytes(packed);
}

/**
 * ticketHash for many nonces of one ticket: the packed bytes are laid out once and only the
 * nonce's word changes per ticket (the same bytes as ticketHash, a test checks it).
 */
export function ticketHasher(t: Omit<Ticket, 'senderNonce'>): (senderNonce: bigint) => Uint8Array {
  const template = new Uint8Array(20 + 20 + 32 * 4 + t.auxData.length);
  template.set(t.recipient, 0);
  template.set(t.sender, 20);
  template.set(word(t.faceValue), 40);
  template.set(word(t.winProb), 72);
  template.set(t.recipientRandHash, 136);
  template.set(t.auxData, 168);
  return (senderNonce) => {
    // Nonces are uint32 in go-livepeer (TicketSenderParams.sender_nonce); anything wider
    // takes the general path.
    if (senderNonce < 0n || senderNonce > 0xffffffffn) {
      return ticketHash({ ...t, senderNonce });
    }
    const n = Number(senderNonce);
    // The word's last four bytes, big-endian; the 28 before them stay zero.
    template[132] = n >>> 24;
    template[133] = (n >>> 16) & 0xff;
    template[134] = (n >>> 8) & 0xff;
    template[135] = n & 0xff;
    return keccak256Bytes(template);
  };
}

/** faceValue × winProb / (2^256 − 1), exact (go-livepeer pm.TicketParams.EV). */
export function expectedValue(faceValue: bigint, winProb: bigint): Rational {
  return rat(faceValue * winProb, UINT256_MAX);
}

export const MAX_WIN_PROB = UINT256_MAX;
