// The payment path's cheaper forms against the plain ones they replace, on random and edge
// inputs: rationals reduced with less gcd work, ticket hashes from a template, and the
// Payment's protobuf with its fixed fields encoded once. Same values, same bytes.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  MAX_WIN_PROB,
  createWire,
  rationals as Q,
  ticketHash,
  ticketHasher,
} from '../../src/signer/index.ts';

const big = (bytes: number) => BigInt(`0x${randomBytes(bytes).toString('hex')}`);
const positive = (bytes: number) => big(bytes) + 1n;
// Numbers like a payment's: ~256-bit denominators sharing 2²⁵⁶ − 1's factors, small counts,
// small prices, zero and negative credits.
function randomRational(): ReturnType<typeof Q.rat> {
  switch (Math.floor(Math.random() * 5)) {
    case 0:
      return Q.rat(big(8) * big(32), MAX_WIN_PROB);
    case 1:
      return Q.rat(-big(12), positive(2));
    case 2:
      return Q.rat(big(4));
    case 3:
      return Q.rat(big(40) - big(40), positive(33));
    default:
      return Q.ZERO;
  }
}

describe('exact rationals with less gcd work', () => {
  it('mulInt, addSub and ceilDivSub equal the plain operations', () => {
    for (let i = 0; i < 3000; i++) {
      const [a, b, c] = [randomRational(), randomRational(), randomRational()];
      const n = [0n, 1n, 2n, 3n, 100n, big(2), big(8)][i % 7]!;
      expect(Q.mulInt(a, n)).toEqual(Q.mul(a, Q.rat(n)));
      expect(Q.addSub(a, b, c)).toEqual(Q.sub(Q.add(a, b), c));
      expect(Q.addSub(a, a, c)).toEqual(Q.sub(Q.add(a, a), c));
      expect(Q.addSub(a, b, Q.rat(c.num))).toEqual(Q.sub(Q.add(a, b), Q.rat(c.num)));
      if (c.num > 0n) {
        expect(Q.ceilDivSub(a, b, c)).toBe(Q.ceil(Q.div(Q.sub(a, b), c)));
      }
    }
  });

  it('ceilDivSub refuses a divisor that is not positive', () => {
    expect(() => Q.ceilDivSub(Q.rat(1n), Q.ZERO, Q.ZERO)).toThrow(RangeError);
    expect(() => Q.ceilDivSub(Q.rat(1n), Q.ZERO, Q.rat(-1n))).toThrow(RangeError);
  });
});

describe('ticket hashes from a template', () => {
  it('equal ticketHash for every nonce, with and without auxData', () => {
    for (const auxData of [new Uint8Array(0), randomBytes(64)]) {
      const ticket = {
        recipient: randomBytes(20),
        sender: randomBytes(20),
        faceValue: big(8),
        winProb: MAX_WIN_PROB - big(4),
        recipientRandHash: randomBytes(32),
        auxData,
      };
      const hash = ticketHasher(ticket);
      const nonces = [0n, 1n, 255n, 256n, 65_536n, 0xffffffffn, 1n << 32n, (1n << 40n) + 7n];
      for (let i = 0; i < 50; i++) nonces.push(big(4));
      for (const senderNonce of nonces) {
        expect(Buffer.from(hash(senderNonce))).toEqual(
          Buffer.from(ticketHash({ ...ticket, senderNonce })),
        );
      }
    }
  });
});

describe('Payment encoding with the fixed fields encoded once', () => {
  const wire = createWire();
  it('gives the bytes protobufjs gives for the whole message', () => {
    const expiration = { creationRound: 4321n, creationRoundBlockHash: randomBytes(32) };
    for (const nested of [null, { creationRound: 0n, creationRoundBlockHash: new Uint8Array(0) }]) {
      const fixed = {
        ticketParams: {
          recipient: randomBytes(20),
          faceValue: randomBytes(8),
          winProb: randomBytes(32),
          recipientRandHash: randomBytes(32),
          seed: randomBytes(16),
          expirationBlock: randomBytes(3),
          expirationParams: nested,
        },
        sender: randomBytes(20),
        expirationParams: expiration,
        expectedPrice: { pricePerUnit: 1_000n, pixelsPerUnit: 3n, capability: 35, constraint: 'x' },
      };
      const encode = wire.paymentEncoder(fixed);
      const nonces = [0, 1, 127, 128, 16_383, 16_384, 2 ** 21, 2 ** 28, 2 ** 31, 2 ** 32 - 1];
      const lists = [
        [],
        nonces.map((senderNonce) => ({ senderNonce, sig: randomBytes(65) })),
        [{ senderNonce: 5, sig: new Uint8Array(0) }],
        [{ senderNonce: 6, sig: randomBytes(200) }],
        [{ senderNonce: 2 ** 32 + 9, sig: randomBytes(65) }],
      ];
      for (const ticketSenderParams of lists) {
        expect(Buffer.from(encode(ticketSenderParams))).toEqual(
          Buffer.from(wire.encodePayment({ ...fixed, ticketSenderParams })),
        );
      }
    }
  });
});
