// The steps of one go-livepeer payment (src/signer/remote/payment.ts), each on its own: the
// wire through the real protobuf codec, sessions through the real table and MAC. The whole
// payment, against a real chain and go-livepeer's expectations, is remote-payment.test.ts and
// go-livepeer.test.ts; these pin each step's rule and its refusal where it is decided.
import { randomBytes } from 'node:crypto';
import { getBytes, hexlify } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../../src/database.ts';
import type { Principal } from '../../src/platform/auth.ts';
import { createSecrets } from '../../src/platform/secrets.ts';
import {
  MAX_WIN_PROB,
  auxData,
  billableUnits,
  checkPriceCeilings,
  countTickets,
  createBase64Memo,
  createOfferCache,
  createSessions,
  createWire,
  encodeState,
  expectedValue,
  makeTickets,
  parseLivePaymentRequest,
  readOffer,
  restoreSession,
  ticketHash,
} from '../../src/signer/index.ts';
import type {
  ChainSnapshot,
  LivePaymentRequest,
  Offer,
  Session,
  TicketTerms,
} from '../../src/signer/index.ts';
import { testConfig } from '../support/app.ts';
import { createTestDatabase } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';

const wire = createWire();
const config = testConfig().signer.remote;
const ORCHESTRATOR = getBytes(`0x${'ab'.repeat(20)}`);
const RAND_HASH = getBytes(`0x${'cd'.repeat(32)}`);
const SENDER = getBytes(`0x${'12'.repeat(20)}`);
const NOW = new Date('2026-03-01T12:00:00.000Z');
const rat = (num: bigint, den = 1n) => ({ num, den });

function orchestratorInfo(o: { price?: [bigint, bigint] | null; round?: bigint } = {}) {
  const price: [bigint, bigint] | null = o.price === undefined ? [1_000n, 1n] : o.price;
  return wire.encode('OrchestratorInfo', {
    transcoder: 'https://orchestrator.test:8935',
    ticketParams: {
      recipient: ORCHESTRATOR,
      faceValue: getBytes('0x0de0b6b3a7640000'), // 1 ETH
      winProb: getBytes(`0x${'ff'.repeat(32)}`),
      recipientRandHash: RAND_HASH,
      seed: randomBytes(16),
      expirationBlock: getBytes('0x0100'),
      ...(o.round === undefined
        ? {}
        : {
            expirationParams: {
              creationRound: o.round.toString(),
              creationRoundBlockHash: getBytes(`0x${'77'.repeat(32)}`),
            },
          }),
    },
    priceInfo:
      price === null
        ? undefined
        : { pricePerUnit: price[0].toString(), pixelsPerUnit: price[1].toString() },
    address: ORCHESTRATOR,
    authToken: { token: randomBytes(16), sessionId: 's', expiration: '4102444800' },
  });
}

function request(o: Partial<LivePaymentRequest> = {}): LivePaymentRequest {
  return {
    state: { state: null, sig: null },
    orchestrator: orchestratorInfo(),
    manifestId: 'stream-1',
    app: '',
    inPixels: 0n,
    type: 'lv2v',
    maxPrice: null,
    capabilities: null,
    ...o,
  };
}

function principal(accountId = 'acct_payer'): Principal {
  return {
    via: 'api_key',
    accountId,
    appId: null,
    keyId: 'key_caller',
    clientId: null,
    endUserId: null,
    scopes: ['signer'],
    allowedOrigins: null,
    allowedResources: null,
  };
}

/** A session as restoreSession returns it, for the steps after it. */
function session(o: { resumed?: boolean; lastUpdate?: Date; nonce?: bigint; pm?: string } = {}) {
  return {
    state: {
      StateID: 'state-1',
      PMSessionID: o.pm ?? hexlify(RAND_HASH),
      LastUpdate: o.lastUpdate ?? new Date(0),
      OrchestratorAddress: hexlify(ORCHESTRATOR),
      App: '',
      AuthExpiry: 0n,
      SenderNonce: o.nonce ?? 0n,
      Balance: rat(0n),
      InitialPricePerUnit: 1_000n,
      InitialPixelsPerUnit: 1n,
      Type: 'lv2v',
      SequenceNumber: 1n,
      AuthID: 'key_caller',
    },
    resumed: o.resumed ?? true,
    previous: null,
    manifestId: 'stream-1',
  } satisfies Session;
}

describe('readOffer', () => {
  it('reads the price, the ticket params and the addresses as the state stores them', () => {
    const offer = readOffer(wire, request());
    expect(offer.price).toMatchObject({ pricePerUnit: 1_000n, pixelsPerUnit: 1n });
    expect(offer.orchestratorAddress).toBe(`0x${'ab'.repeat(20)}`);
    expect(offer.recipientRandHash).toBe(`0x${'cd'.repeat(32)}`);
    expect(offer.type).toBe('lv2v');
  });

  it('refuses in go-livepeer order: a missing price before an unknown job type', () => {
    expect(() =>
      readOffer(wire, request({ orchestrator: orchestratorInfo({ price: null }), type: 'x' })),
    ).toThrow(expect.objectContaining({ status: 400, message: 'missing or zero priceInfo' }));
    expect(() => readOffer(wire, request({ type: 'x' }))).toThrow(
      expect.objectContaining({ status: 400, message: 'invalid job type' }),
    );
    expect(() => readOffer(wire, request({ orchestrator: new Uint8Array(0) }))).toThrow(
      'missing orchestrator',
    );
    expect(() => readOffer(wire, request({ orchestrator: Uint8Array.of(0xff, 0xff) }))).toThrow(
      'invalid orchestrator info',
    );
  });
});

describe('the offer cache (one decode per orchestrator info)', () => {
  it('decodes the same bytes once, and still checks each request against them', () => {
    const cache = createOfferCache();
    const bytes = orchestratorInfo();
    const first = readOffer(wire, request({ orchestrator: bytes }), cache);
    const again = readOffer(wire, request({ orchestrator: bytes, type: 'live' }), cache);
    expect(again.info).toBe(first.info);
    expect(again).toEqual({ ...first, type: 'live' });
    // The same values as without a cache, the expected value included.
    expect(readOffer(wire, request({ orchestrator: bytes }))).toEqual(first);
    expect(first.ev).toEqual(expectedValue(10n ** 18n, MAX_WIN_PROB));
    expect(() => readOffer(wire, request({ orchestrator: bytes, type: 'x' }), cache)).toThrow(
      'invalid job type',
    );
  });

  it('keeps no refusal: a bad orchestrator info is refused every time, in the same words', () => {
    const cache = createOfferCache();
    const bad = orchestratorInfo({ price: null });
    for (let i = 0; i < 2; i++) {
      expect(() => readOffer(wire, request({ orchestrator: bad }), cache)).toThrow(
        'missing or zero priceInfo',
      );
    }
  });

  it('gives the same bytes object back for the same base64 text, and remembers no bad text', () => {
    const memo = createBase64Memo(10);
    const text = Buffer.from(orchestratorInfo()).toString('base64');
    const body = { orchestrator: text, ManifestID: 'm', inPixels: 1n };
    const a = parseLivePaymentRequest(body, memo).orchestrator;
    const b = parseLivePaymentRequest({ ...body }, memo).orchestrator;
    expect(b).toBe(a);
    expect(Buffer.from(a).toString('base64')).toBe(text);
    for (let i = 0; i < 2; i++) {
      expect(() => parseLivePaymentRequest({ ...body, orchestrator: 'not base64!' }, memo)).toThrow(
        'orchestrator must be base64',
      );
    }
  });
});

describe('billableUnits', () => {
  const LV2V_PER_SECOND = 1280n * 720n * 30n;

  it('preloads 60 s of 720p30 on the first lv2v payment, then bills the time elapsed', () => {
    expect(billableUnits('lv2v', session({ resumed: false }), 0n, NOW)).toBe(LV2V_PER_SECOND * 60n);
    const last = new Date(NOW.getTime() - 2_500);
    expect(billableUnits('lv2v', session({ lastUpdate: last }), 0n, NOW)).toBe(
      (LV2V_PER_SECOND * 2_500n) / 1000n,
    );
  });

  it('preloads again when the clock went backwards, and rounds live seconds up', () => {
    const ahead = new Date(NOW.getTime() + 5_000);
    expect(billableUnits('live', session({ lastUpdate: ahead }), 0n, NOW)).toBe(10n);
    const last = new Date(NOW.getTime() - 1_200);
    expect(billableUnits('live', session({ lastUpdate: last }), 0n, NOW)).toBe(2n);
    expect(billableUnits('fixed', session(), 0n, NOW)).toBe(1n);
  });

  it('bills inPixels for the untyped job, and refuses none', () => {
    expect(billableUnits('', session(), 4_096n, NOW)).toBe(4_096n);
    expect(() => billableUnits('', session(), 0n, NOW)).toThrow(
      expect.objectContaining({
        status: 400,
        message: 'no billable units: inPixels must be positive',
      }),
    );
  });
});

describe('checkPriceCeilings', () => {
  const offerAt = (per: bigint, pixels = 1n, type = 'lv2v') =>
    readOffer(wire, request({ orchestrator: orchestratorInfo({ price: [per, pixels] }), type }));

  it('names the lowest ceiling, with both prices to 3 decimals (481)', () => {
    const offer = offerAt(3_000n);
    const maxPrice = { price: rat(3_001n, 2n), unit: '720p-pixel-seconds' };
    expect(() =>
      checkPriceCeilings(config, request({ maxPrice }), offer, session({ resumed: false })),
    ).toThrow(
      expect.objectContaining({
        status: 481,
        message: 'orchestrator price 3000.000 exceeds request maxPrice ceiling 1500.500',
      }),
    );
    // A resumed session's initial price (1000) is lower still, and decides.
    expect(() => checkPriceCeilings(config, request({ maxPrice }), offer, session())).toThrow(
      'orchestrator price 3000.000 exceeds initial session price ceiling 1000.000',
    );
  });

  it("charges the session's initial price, not the orchestrator's current one", () => {
    const prices = checkPriceCeilings(config, request(), offerAt(1_500n, 2n), session());
    expect(prices).toEqual({ orchestrator: rat(750n), initial: rat(1_000n) });
  });

  it("refuses a maxPrice in another unit than the job type's", () => {
    const maxPrice = { price: rat(1n), unit: 'seconds' };
    expect(() => checkPriceCeilings(config, request({ maxPrice }), offerAt(1n), session())).toThrow(
      expect.objectContaining({
        status: 400,
        message: 'maxPrice.unit must be 720p-pixel-seconds for payment type lv2v',
      }),
    );
    expect(() =>
      checkPriceCeilings(config, request({ maxPrice, type: '' }), offerAt(1n, 1n, ''), session()),
    ).toThrow('maxPrice requires payment type live, lv2v or fixed');
  });
});

describe('countTickets', () => {
  const prices = { orchestrator: rat(2n), initial: rat(2n) };

  it('buys enough tickets to cover the larger of the fee and one ticket, less the credit', () => {
    // fee 100 × 2 = 200; ev 30; credit 20: ceil((200 − 20) / 30) = 6.
    expect(countTickets(100n, prices, rat(20n), rat(30n))).toEqual({
      fee: rat(200n),
      numTickets: 6n,
    });
    // A fee below one ticket's value still buys one.
    expect(countTickets(1n, prices, rat(0n), rat(30n)).numTickets).toBe(1n);
  });

  it('answers 482 when the credit covers the payment, and refuses more than 100 tickets', () => {
    expect(() => countTickets(10n, prices, rat(30n), rat(30n))).toThrow(
      expect.objectContaining({ status: 482, message: 'no tickets' }),
    );
    expect(() => countTickets(10_000n, prices, rat(0n), rat(1n))).toThrow(
      'too many tickets: 20000 needed, at most 100 per payment',
    );
    expect(() => countTickets(1n, prices, rat(0n), rat(0n))).toThrow(
      'ticket expected value is zero',
    );
  });
});

describe('makeTickets', () => {
  const snapshot = {
    lastInitializedRound: 42n,
    lastInitializedRoundBlockHash: `0x${'99'.repeat(32)}`,
  } as ChainSnapshot;
  const terms = { snapshot, faceValue: 10n ** 18n, winProb: MAX_WIN_PROB } as TicketTerms;

  it("numbers tickets after the session's nonce, in the last initialized round", () => {
    const offer: Offer = readOffer(wire, request());
    const tickets = makeTickets(offer, terms, session({ nonce: 7n }), SENDER, 3n);
    expect(tickets.nonces).toEqual([8n, 9n, 10n]);
    expect(tickets.expiration.creationRound).toBe(42n);
    const aux = auxData(42n, getBytes(snapshot.lastInitializedRoundBlockHash));
    expect(hexlify(tickets.hashes[2]!)).toBe(
      hexlify(
        ticketHash({
          recipient: ORCHESTRATOR,
          sender: SENDER,
          faceValue: terms.faceValue,
          winProb: terms.winProb,
          senderNonce: 10n,
          recipientRandHash: RAND_HASH,
          auxData: aux,
        }),
      ),
    );
  });

  it("starts over at 1 for new ticket params, and uses the orchestrator's round when given", () => {
    const offer = readOffer(wire, request({ orchestrator: orchestratorInfo({ round: 40n }) }));
    const refreshed = session({ nonce: 7n, pm: `0x${'ee'.repeat(32)}` });
    const tickets = makeTickets(offer, terms, refreshed, SENDER, 2n);
    expect(tickets.nonces).toEqual([1n, 2n]);
    expect(tickets.expiration.creationRound).toBe(40n);
  });
});

describe('restoreSession (signer_sessions and the state MAC)', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let sessions: ReturnType<typeof createSessions>;
  const payer = { principal: principal(), caller: principal('acct_gateway') };

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    sessions = createSessions({ db: handle.db, secrets: createSecrets('a'.repeat(64)) });
  });
  afterAll(async () => {
    await database.destroy();
  });

  /** A request carrying `state`, sealed by `sealer` (default: this signer). */
  function withState(state: Session['state'], sealer = sessions) {
    const bytes = encodeState(state);
    return request({ state: { state: bytes, sig: sealer.seal(SENDER, bytes) } });
  }

  it('starts a new session, authorized by the credential that called', async () => {
    const offer = readOffer(wire, request({ manifestId: '' }));
    const s = await restoreSession(
      sessions.store(SENDER),
      request({ manifestId: '' }),
      offer,
      payer,
      NOW,
    );
    expect(s.resumed).toBe(false);
    expect(s.previous).toBeNull();
    expect(s.state).toMatchObject({
      SequenceNumber: 0n,
      SenderNonce: 0n,
      LastUpdate: NOW,
      AuthID: 'key_caller',
      PMSessionID: `0x${'cd'.repeat(32)}`,
      InitialPricePerUnit: 1_000n,
    });
    expect(s.manifestId).toMatch(/^[0-9a-f]{16}$/);
  });

  it('refuses a state sealed under another secret, before reading anything else', async () => {
    const other = createSessions({ db: handle.db, secrets: createSecrets('b'.repeat(64)) });
    const req = withState(session().state, other);
    await expect(
      restoreSession(sessions.store(SENDER), req, readOffer(wire, req), payer, NOW),
    ).rejects.toMatchObject({ status: 400, message: 'invalid sig' });
  });

  it('refuses a well-sealed state whose StateID the table does not know', async () => {
    const req = withState({ ...session().state, StateID: 'never-claimed' });
    await expect(
      restoreSession(sessions.store(SENDER), req, readOffer(wire, req), payer, NOW),
    ).rejects.toMatchObject({ status: 400, message: 'unknown StateID' });
  });

  it('advances a state this replica handed out, and refuses it once used or to another account', async () => {
    const state = session().state;
    const req = withState(state);
    const digest = sessions.store(SENDER).digest(req.state.state!, req.state.sig!);
    const offer = readOffer(wire, req);
    sessions.remember(null, digest, {
      row: { accountId: 'acct_payer', lastSeq: 1n, lastStateDigest: digest },
      state,
    });
    const advanced = await restoreSession(sessions.store(SENDER), req, offer, payer, NOW);
    expect(advanced.state.SequenceNumber).toBe(2n);
    expect(advanced.previous).toEqual({ seq: 1n, stateDigest: digest });

    const stranger = { principal: principal('acct_other'), caller: principal('acct_other') };
    await expect(
      restoreSession(sessions.store(SENDER), req, offer, stranger, NOW),
    ).rejects.toMatchObject({ status: 403, message: 'this state belongs to another account' });

    sessions.remember(digest, digest, {
      row: { accountId: 'acct_payer', lastSeq: 2n, lastStateDigest: digest },
      state,
    });
    await expect(
      restoreSession(sessions.store(SENDER), req, offer, payer, NOW),
    ).rejects.toMatchObject({
      status: 400,
      message:
        'state replayed: SequenceNumber 1 was already used; send the state of the last response',
    });
  });
});
