// Ticket hashes and auxData against go-livepeer's pm test vectors, rationals, and the state
// encoding (Go's field names and formats).
import { existsSync, readFileSync } from 'node:fs';
import { ZeroAddress, getBytes } from 'ethers';
import { describe, expect, it } from 'vitest';
import {
  auxData,
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
// The project's shared vectors (beside the repository, as CI lays them out); a checkout on its
// own falls back to the copy in fixtures/, which a test below keeps identical.
const SHARED = new URL('../../../shared/vectors/ticket-hash.json', import.meta.url);
const FIXTURE = new URL('./fixtures/ticket-hash.json', import.meta.url);
const vectors = JSON.parse(readFileSync(existsSync(SHARED) ? SHARED : FIXTURE, 'utf8')) as Vectors;

it.runIf(existsSync(SHARED))(
  'keeps fixtures/ticket-hash.json identical to the shared vectors',
  () => {
    expect(JSON.parse(readFileSync(FIXTURE, 'utf8'))).toEqual(
      JSON.parse(readFileSync(SHARED, 'utf8')),
    );
  },
);

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
      expect(hash).toBe(v.hash);
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
