// What real go-livepeer gateways send the remote signer, checked against go-livepeer's source
// (docs/signer.md, "Checked against go-livepeer's source"): the orchestrator info wrapped in a
// PaymentResult (server/live_payment.go RequestPayment) or bare (newer signers, the Python
// SDK); the live-AI sequence of ManifestIDs (none with the job request, then the
// orchestrator's own job id); and maxPrice as server/remote_signer.go parses it. End to end
// over HTTP on anvil; the orchestrator side checks every ticket.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, call } from '../support/credentials.ts';
import {
  paymentBody,
  receivePayment,
  signerUsageEvents,
  startRemoteSignerWorld,
  testOrchestrator,
} from './remote-support.ts';
import type { RemoteSignerWorld, TestOrchestrator } from './remote-support.ts';

let world: RemoteSignerWorld;
let orch: TestOrchestrator;

beforeAll(async () => {
  world = await startRemoteSignerWorld();
  orch = testOrchestrator(world);
});
afterAll(async () => {
  await world?.close();
});

const pay = (body: unknown) =>
  call(world.t, 'POST', '/generate-live-payment', {
    headers: bearer(world.key.secret),
    body,
  });

/** A protobuf varint. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/**
 * What go-livepeer's gateway sends: proto.Marshal(&net.PaymentResult{Info: info}) — field 16,
 * length-delimited (key 0x82 0x01), around the OrchestratorInfo bytes.
 */
function asPaymentResult(infoB64: string): string {
  const info = Buffer.from(infoB64, 'base64');
  return Buffer.concat([Buffer.from([0x82, 0x01, ...varint(info.length)]), info]).toString(
    'base64',
  );
}

const b64 = (bytes: number[] | Buffer) => Buffer.from(bytes).toString('base64');
// The orchestrator's job id (server/ai_http.go StartLiveVideoToVideo: a RandomManifestID).
const orchestratorMid = () => randomBytes(4).toString('hex');

describe('the orchestrator bytes', () => {
  it('accepts an OrchestratorInfo wrapped in a PaymentResult, as go-livepeer gateways send it, across a session', async () => {
    const info = await orch.info({ pricePerUnit: 1000n });
    const wrapped = asPaymentResult(info);
    const first = await pay(paymentBody(wrapped, { type: 'lv2v' }));
    expect(first.status).toBe(200);
    const tickets = receivePayment(world.wire, first.body.payment, world.account.wallet.address);
    expect(tickets.length).toBeGreaterThan(0);
    expect(tickets[0]!.recipient).toBe(orch.wallet.address.toLowerCase());
    expect(tickets[0]!.recipientRandHash).toBe(orch.recipientRandHash);

    // The session goes on with the same wrapper, or with a bare info (a gateway upgraded
    // mid-stream): both name the same orchestrator.
    const mid = orchestratorMid();
    const second = await pay(
      paymentBody(
        info,
        {
          type: 'lv2v',
          ManifestID: mid,
          maxPrice: { price: 1000, currency: 'wei', unit: '720p-pixel-seconds' },
        },
        first.body.state,
      ),
    );
    // lv2v bills elapsed time: a second call right after the first is covered by its credit.
    expect([200, 482]).toContain(second.status);
  });

  it('decodes both encodings to the same payment terms', async () => {
    const info = await orch.info({ pricePerUnit: 1000n });
    const [bare, wrapped] = await Promise.all([
      pay(paymentBody(info, { inPixels: 1_500_000_000 })),
      pay(paymentBody(asPaymentResult(info), { inPixels: 1_500_000_000 })),
    ]);
    expect(bare.status).toBe(200);
    expect(wrapped.status).toBe(200);
    const terms = (payment: string) => {
      const p = world.wire.decode('Payment', Buffer.from(payment, 'base64'));
      return { ticketParams: p.ticketParams, expectedPrice: p.expectedPrice, sender: p.sender };
    };
    expect(terms(wrapped.body.payment)).toEqual(terms(bare.body.payment));
    for (const res of [bare, wrapped]) {
      receivePayment(world.wire, res.body.payment, world.account.wallet.address);
    }
  });

  it('still reads a bare OrchestratorInfo carrying fields tollhouse does not know', async () => {
    const info = Buffer.from(await orch.info(), 'base64');
    // hardware (7) and nodes (34) from newer orchestrators, and a field from the future (40).
    const extra = [0x3a, 0x02, 0x0a, 0x00, 0x92, 0x02, 0x01, 0x61, 0xc0, 0x02, 0x01];
    const res = await pay(
      paymentBody(b64(Buffer.concat([info, Buffer.from(extra)])), { inPixels: 1_500_000_000 }),
    );
    expect(res.status).toBe(200);
  });

  it('refuses garbage, a truncated wrapper and a wrapper without an orchestrator (400), signing nothing', async () => {
    const before = (await signerUsageEvents(world.handle)).length;
    const info = Buffer.from(await orch.info(), 'base64');
    const cases: Array<[string, string, RegExp]> = [
      ['not protobuf', b64(Buffer.from('not-proto')), /^invalid orchestrator info$/],
      ['invalid wire type', b64([0x0f, 0x01]), /^invalid orchestrator info$/],
      [
        'a wrapper cut short',
        b64(
          Buffer.concat([Buffer.from([0x82, 0x01, ...varint(info.length)]), info.subarray(0, 20)]),
        ),
        /^invalid orchestrator info$/,
      ],
      ['an empty info in the wrapper', b64([0x82, 0x01, 0x00]), /^missing or zero priceInfo$/],
      // go-livepeer's own test for "payment result missing info" (field 2 as a varint: unknown
      // to a PaymentResult, the wrong wire type for OrchestratorInfo.ticket_params).
      ['an unknown field only', b64([0x10, 0x01]), /^invalid orchestrator info$/],
      // Field 16 that is not length-delimited is no wrapper: an info without a price.
      ['field 16 as a varint', b64([0x80, 0x01, 0x05]), /^missing or zero priceInfo$/],
    ];
    for (const [name, orchestrator, message] of cases) {
      const res = await pay(paymentBody(orchestrator, { inPixels: 1000 }));
      expect(res.status, name).toBe(400);
      expect(res.body.error.message, name).toMatch(message);
    }
    expect((await signerUsageEvents(world.handle)).length).toBe(before);
  });
});

describe('the live-AI sequence of a go-livepeer gateway', () => {
  it('pays the job request without a ManifestID, then every payment under the orchestrator id', async () => {
    const info = asPaymentResult(await orch.info({ pricePerUnit: 1000n }));
    const first = await pay(paymentBody(info, { inPixels: 1_500_000_000 }));
    expect(first.status).toBe(200);
    // The signer picks an id for the first one (go-livepeer: a random manifest id).
    const firstSeg = world.wire.decode('SegData', Buffer.from(first.body.segCreds, 'base64'));
    expect((firstSeg.manifestId as Uint8Array).length).toBeGreaterThan(0);

    const mid = orchestratorMid();
    let state = first.body.state;
    for (let i = 0; i < 2; i++) {
      const res = await pay(paymentBody(info, { ManifestID: mid, inPixels: 1_500_000_000 }, state));
      expect(res.status).toBe(200);
      const seg = world.wire.decode('SegData', Buffer.from(res.body.segCreds, 'base64'));
      // The orchestrator credits the payment to the balance of the id in the segCreds.
      expect(Buffer.from(seg.manifestId as Uint8Array).toString()).toBe(mid);
      state = res.body.state;
    }
    // Once a state exists the ManifestID is required (go-livepeer: "missing manifestID").
    const missing = await pay(paymentBody(info, { inPixels: 1_500_000_000 }, state));
    expect(missing.status).toBe(400);
    expect(missing.body.error.message).toBe('missing manifestID');
  });
});

describe('maxPrice, as server/remote_signer.go parses it', () => {
  const live = async (maxPrice: unknown) =>
    pay(paymentBody(await orch.info({ pricePerUnit: 1000n }), { type: 'live', maxPrice }));

  it("accepts big.Rat's forms, the currency and unit in any case and spacing", async () => {
    for (const price of ['1000', '1e3', '2000/2', '1000.0', 5000]) {
      const res = await live({ price, currency: ' WEI ', unit: ' Seconds ' });
      expect(res.status, String(price)).toBe(200);
    }
    for (const price of ['999.5', '1/2', '9.99e2']) {
      const res = await live({ price, currency: 'wei', unit: 'seconds' });
      expect(res.status, price).toBe(481);
    }
  });

  it('refuses a price that is not positive, a currency other than wei (even none) and a job type without a unit (400)', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [
        { price: '0', currency: 'wei', unit: 'seconds' },
        /^maxPrice\.price must be a positive decimal$/,
      ],
      [{ price: '-5', currency: 'wei', unit: 'seconds' }, /positive decimal/],
      [{ price: 'cheap', currency: 'wei', unit: 'seconds' }, /positive decimal/],
      [{ price: '1000', unit: 'seconds' }, /^maxPrice\.currency must be wei$/],
      [{ price: '1000', currency: 'usd', unit: 'seconds' }, /currency must be wei/],
      [
        { price: '1000', currency: 'wei', unit: 'fixed' },
        /^maxPrice\.unit must be seconds for payment type live$/,
      ],
    ];
    for (const [maxPrice, message] of cases) {
      const res = await live(maxPrice);
      expect(res.status, JSON.stringify(maxPrice)).toBe(400);
      expect(res.body.error.message).toMatch(message);
    }
    const untyped = await pay(
      paymentBody(await orch.info(), {
        inPixels: 1000,
        maxPrice: { price: '1000', currency: 'wei', unit: '' },
      }),
    );
    expect(untyped.status).toBe(400);
    expect(untyped.body.error.message).toBe('maxPrice requires payment type live, lv2v or fixed');
  });
});
