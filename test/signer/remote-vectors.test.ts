// Ticket hashes and auxData against go-livepeer's pm test vectors, rationals, and the state
// encoding (Go's field names and formats).
import { readFileSync } from 'node:fs';
import { Signature, Wallet, ZeroAddress, getBytes, hexlify, verifyMessage } from 'ethers';
import { describe, expect, it } from 'vitest';
import {
  auxData,
  createMessageSigner,
  createSigningPool,
  decodeState,
  encodeState,
  expectedValue,
  ticketHash,
  MAX_WIN_PROB,
} from '../../src/signer/index.ts';

interface Vectors {
  ticketHash: Array<{ faceValue: string; winProb: string; senderNonce: number; hash: string }>;
  auxData: {
    blockHash: string;
    cases: Array<{ creationRound: number; blockHash: 'given' | 'zero'; auxData: string }>;
  };
}
// Vectors computed with go-livepeer's ticket hashing (pm/ticket.go); the real TicketBroker's
// getTicketHash is checked against the same file in ./operations.test.ts.
const FIXTURE = new URL('./fixtures/ticket-hash.json', import.meta.url);
const vectors = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Vectors;

describe('ticket hash', () => {
  it.each(vectors.ticketHash)(
    'matches go-livepeer for faceValue $faceValue winProb $winProb nonce $senderNonce',
    (v) => {
      const hash = ticketHash({
        recipient: getBytes(ZeroAddress),
        sender: getBytes(ZeroAddress),
        faceValue: BigInt(v.faceValue),
        winProb: BigInt(v.winProb),
        senderNonce: BigInt(v.senderNonce),
        recipientRandHash: new Uint8Array(32),
        auxData: new Uint8Array(0),
      });
      expect(hexlify(hash)).toBe(v.hash);
    },
  );

  it.each(vectors.auxData.cases)(
    'builds auxData for round $creationRound with a $blockHash block hash',
    (c) => {
      const hash =
        c.blockHash === 'given' ? getBytes(vectors.auxData.blockHash) : new Uint8Array(32);
      expect(Buffer.from(auxData(BigInt(c.creationRound), hash)).toString('hex')).toBe(
        c.auxData.slice(2),
      );
    },
  );
});

describe('signatures (libsecp256k1 through tiny-secp256k1)', () => {
  // Fixed keys (so a failure reproduces) and random ones; messages are the vectors' ticket
  // hashes (what the signer signs for tickets), an empty message and a state-sized JSON.
  const keys = [
    '0x' + '01'.padStart(64, '0'),
    '0x' + 'fe'.repeat(31) + 'ff',
    '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318',
    ...Array.from({ length: 5 }, () => Wallet.createRandom().privateKey),
  ];
  const messages = [
    ...vectors.ticketHash.map((v) => getBytes(v.hash)),
    new Uint8Array(0),
    new TextEncoder().encode(JSON.stringify({ StateID: 'x'.repeat(300) })),
  ];
  const HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

  it('are byte-identical to ethers Wallet.signMessage (RFC 6979), low-S with V 27/28', async () => {
    for (const key of keys) {
      const wallet = new Wallet(key);
      const sign = createMessageSigner(key);
      for (const message of messages) {
        const sig = sign(message);
        expect(sig).toHaveLength(65);
        expect(hexlify(sig)).toBe(await wallet.signMessage(message));
        expect([27, 28]).toContain(sig[64]);
        expect(BigInt(hexlify(sig.slice(32, 64)))).toBeLessThanOrEqual(HALF_N);
        expect(verifyMessage(message, hexlify(sig))).toBe(wallet.address);
        expect(Signature.from(hexlify(sig)).v).toBe(sig[64]);
      }
    }
  });
});

describe('signing threads', () => {
  it('sign on worker threads exactly as on the calling thread, in order, and close', async () => {
    const key = Wallet.createRandom().privateKey;
    const sign = createMessageSigner(key);
    const pool = createSigningPool(key, 2);
    try {
      const batches = Array.from({ length: 20 }, (_, i) =>
        Array.from({ length: 1 + (i % 3) }, (_, j) => new TextEncoder().encode(`m${i}.${j}`)),
      );
      const signed = await Promise.all(batches.map((b) => pool.sign(b)));
      signed.forEach((sigs, i) => {
        expect(sigs.map((x) => hexlify(x))).toEqual(batches[i]!.map((m) => hexlify(sign(m))));
      });
    } finally {
      await pool.close();
    }
  });
});

describe('expected value', () => {
  it('is faceValue × winProb / (2^256 − 1), exactly', () => {
    expect(expectedValue(1000n, MAX_WIN_PROB)).toEqual({ num: 1000n, den: 1n });
    const half = expectedValue(3n, MAX_WIN_PROB / 2n);
    expect(half.num * 2n < 3n * half.den).toBe(true);
  });
});

describe('payment state', () => {
  const state = {
    StateID: 'abc',
    PMSessionID: '0x' + '11'.repeat(32),
    LastUpdate: new Date('2026-01-02T03:04:05.120Z'),
    OrchestratorAddress: '0x' + 'ab'.repeat(20),
    App: 'my-app',
    AuthExpiry: 0n,
    SenderNonce: 4294967295n,
    Balance: { num: 5n, den: 3n },
    InitialPricePerUnit: 9223372036854775807n,
    InitialPixelsPerUnit: 1n,
    Type: 'lv2v',
    SequenceNumber: 18446744073709551615n,
    AuthID: 'key_1',
  };

  it('is written with Go field names in declaration order, RFC 3339 nano time and a RatString balance', () => {
    expect(new TextDecoder().decode(encodeState(state))).toBe(
      '{"StateID":"abc","PMSessionID":"0x' +
        '11'.repeat(32) +
        '","LastUpdate":"2026-01-02T03:04:05.12Z",' +
        '"OrchestratorAddress":"0x' +
        'ab'.repeat(20) +
        '","App":"my-app","AuthExpiry":0,"SenderNonce":4294967295,' +
        '"Balance":"5/3","InitialPricePerUnit":9223372036854775807,"InitialPixelsPerUnit":1,"Type":"lv2v",' +
        '"SequenceNumber":18446744073709551615,"AuthID":"key_1"}',
    );
  });

  it('round-trips 64-bit integers exactly', () => {
    expect(decodeState(encodeState(state))).toEqual(state);
  });

  it('refuses states with missing fields, wrong types or out-of-range numbers', () => {
    const json = new TextDecoder().decode(encodeState(state));
    for (const bad of [
      json.replace('"SenderNonce":4294967295', '"SenderNonce":4294967296'),
      json.replace('"Balance":"5/3"', '"Balance":"5/0"'),
      json.replace('"App":"my-app",', ''),
      json.replace('"Type":"lv2v"', '"Type":3'),
      '[]',
      'not json',
    ]) {
      expect(decodeState(new TextEncoder().encode(bad))).toBeNull();
    }
  });
});
