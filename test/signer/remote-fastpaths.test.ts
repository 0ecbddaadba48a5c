// The payment path's cheaper forms against the plain ones they replace, on random and edge
// inputs: rationals reduced with less gcd work, ticket hashes from a template, and the
// Payment's protobuf with its fixed fields encoded once. Same values, same bytes.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  MAX_WIN_PROB,
  createWire,
  goTime,
  parseJsonExact,
  parseLivePaymentRequest,
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

describe('request JSON read without a reviver when it gives the same value', () => {
  // What the route used before: a reviver turning integer-written numbers into bigints.
  const withReviver = (text: string): unknown =>
    JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
      typeof value === 'number' && context?.source !== undefined && /^-?\d+$/.test(context.source)
        ? BigInt(context.source)
        : value,
    );
  const numbers = [
    '0',
    '-0',
    '1',
    '-1',
    '1000100000',
    '9007199254740991',
    '-9007199254740991',
    '9007199254740992',
    '9007199254740993',
    '9223372036854775807',
    '-9223372036854775808',
    '18446744073709551616',
    '1.0',
    '1.5',
    '-0.0',
    '1e3',
    '1E3',
    '1e-3',
    '2.5e+2',
    '0.1',
    '123456789012345678901234567890',
  ];
  const strings = [
    '""',
    '"a.e"',
    '"1.5"',
    String.raw`"x\\"`,
    String.raw`"\"1.5e3\\"`,
    String.raw`"a\\\"1.5"`,
    '"e"',
    String.raw`"\u0022 1.5"`,
    '"E.5"',
  ];
  const atoms = [...numbers, ...strings, 'true', 'false', 'null'];
  const pick = <T>(list: readonly T[]) => list[Math.floor(Math.random() * list.length)]!;
  const keys = ['inPixels', 'INPIXELS', 'state', '__proto__', 'price', 'maxPrice', 'a.e1', ''];
  function value(depth: number): string {
    const r = Math.random();
    if (depth > 2 || r < 0.5) return pick(atoms);
    if (r < 0.75) {
      return `[${Array.from({ length: Math.floor(Math.random() * 4) }, () => value(depth + 1)).join(', ')}]`;
    }
    return `{${Array.from(
      { length: Math.floor(Math.random() * 4) },
      () => `${JSON.stringify(pick(keys))} : ${value(depth + 1)}`,
    ).join(',')}}`;
  }

  it('equals the reviver on generated bodies: fractions, exponents, huge integers, -0, escapes, __proto__', () => {
    for (let i = 0; i < 5000; i++) {
      const text = i < atoms.length ? atoms[i]! : value(0);
      expect(parseJsonExact(text), text).toEqual(withReviver(text));
    }
  });

  it('equals the reviver on a payment body, and throws where JSON.parse throws', () => {
    const body =
      '{"state":{"State":"eyJ9","Sig":null},"orchestrator":"AAAA","ManifestID":"m","inPixels":1000100000}';
    expect(parseJsonExact(body)).toEqual(withReviver(body));
    expect((parseJsonExact(body) as { inPixels: unknown }).inPixels).toBe(1_000_100_000n);
    for (const bad of ['', '{', '{"a":1.}', '01', String.raw`{"a":"\"}`, 'nul']) {
      expect(() => parseJsonExact(bad)).toThrow(SyntaxError);
    }
  });
});

describe('base64 fields', () => {
  // What the route checked before for every byte field.
  const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
  const reference = (value: string) =>
    BASE64.test(value.replace(/[\r\n]/g, '')) ? Buffer.from(value, 'base64') : 'refused';
  const read = (value: string) => {
    try {
      return Buffer.from(
        parseLivePaymentRequest({ orchestrator: 'AAAA', state: { State: value } }).state.state!,
      );
    } catch {
      return 'refused';
    }
  };
  it('decode or refuse as the regular expression did', () => {
    const samples = [
      '',
      'QQ==',
      'QR==',
      'QUI=',
      'QUJ=',
      'QUJD',
      'QQ',
      'QQ=',
      'Q',
      '====',
      'QQ==QQ==',
      'ab-_',
      'ab+/',
      'QU\nJD',
      'QU\r\nJD',
      'QUJD\n',
      ' QUJD',
      'QUJD ',
      'QU JD',
      'QUJD=',
      'Q===',
      'QUJDRA',
      'QUJDRA==',
      '\u00e9AAA',
      'AAA\u0000',
    ];
    for (let i = 0; i < 300; i++) {
      const text = randomBytes(Math.floor(Math.random() * 40)).toString('base64');
      samples.push(text, text.replace(/=+$/, ''), `${text.slice(0, -1)}B`, text.replace('A', '-'));
    }
    for (const value of samples) expect(read(value), value).toEqual(reference(value));
  });
});

describe('Go time', () => {
  // What state.ts wrote before.
  const reference = (date: Date) =>
    date
      .toISOString()
      .replace(/\.?0+Z$/, 'Z')
      .replace(/\.Z$/, 'Z');
  it('trims the fraction as the regular expressions did', () => {
    const dates = [0, 1, 10, 100, 120, 123, 999, 1000, 10_000, 60_000, 1_780_000_000_000];
    for (let i = 0; i < 2000; i++) dates.push(Math.floor(Math.random() * 4_000_000_000_000));
    for (const ms of dates) expect(goTime(new Date(ms))).toBe(reference(new Date(ms)));
  });
});
