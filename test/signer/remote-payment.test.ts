// End to end on anvil: a client pays a test orchestrator through /generate-live-payment
// the way go-livepeer's gateway does (state carried over, 480 refreshes, 482 when credit covers
// the fee); the orchestrator decodes each Payment, checks every ticket's signature and redeems
// every ticket on the real TicketBroker bytecode, which checks hash and signature on-chain.
import type { Contract } from 'ethers';
import { getBytes, hexlify, keccak256, toUtf8Bytes, verifyMessage } from 'ethers';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { bearer, call } from '../support/credentials.ts';
import {
  paymentBody,
  receivePayment,
  redeemEveryTicket,
  segCredsSigner,
  senderFunds,
  ticketTuple,
  sessionRows,
  signerUsageEvents,
  startRemoteSignerWorld,
  testOrchestrator,
} from './remote-support.ts';
import type { RemoteSignerWorld } from './remote-support.ts';

let world: RemoteSignerWorld;
vi.setConfig({ testTimeout: 60_000, hookTimeout: 120_000 });

beforeAll(async () => {
  world = await startRemoteSignerWorld();
});
afterAll(async () => {
  await world?.close();
});

const pay = (body: unknown, headers = bearer(world.key.secret)) =>
  call(world.t, 'POST', '/generate-live-payment', { headers, body });

describe('POST /sign-orchestrator-info', () => {
  it('signs keccak256 of the checksummed address with EIP-191', async () => {
    const res = await call(world.t, 'POST', '/sign-orchestrator-info', {
      headers: bearer(world.key.secret),
    });
    expect(res.status).toBe(200);
    expect(res.body.address).toBe(world.account.wallet.address);
    const message = getBytes(keccak256(toUtf8Bytes(world.account.wallet.address)));
    expect(verifyMessage(message, res.body.signature)).toBe(world.account.wallet.address);
    expect(getBytes(res.body.signature)).toHaveLength(65);
    // Deterministic (RFC 6979) and low-S, as ethers' Wallet.signMessage.
    expect(res.body.signature).toBe(await world.account.wallet.signMessage(message));
  });
});

describe('POST /generate-live-payment', () => {
  it('pays an orchestrator over several calls, carrying the state, and the orchestrator redeems every ticket on the real TicketBroker', async () => {
    const orch = testOrchestrator(world);
    const signer = world.account.wallet.address;
    // 1 000 wei per pixel; tickets of ~1e12 wei, win probability max − 1 (EV must stay below
    // the face value): 1.5e9 pixels → 1.5e12 wei → 2 tickets.
    const info = await orch.info({ pricePerUnit: 1000n, faceValue: 1_000_000_000_000n });
    const first = await pay(paymentBody(info, { ManifestID: 'stream-1', inPixels: 1_500_000_000 }));
    expect(first.status).toBe(200);
    const tickets1 = receivePayment(world.wire, first.body.payment, signer);
    expect(tickets1.map((t) => t.senderNonce)).toEqual([1n, 2n]);
    expect(tickets1[0]!.recipient).toBe(orch.wallet.address.toLowerCase());
    expect(tickets1[0]!.recipientRandHash).toBe(orch.recipientRandHash);

    // The state is JSON with Go's field names, sealed with an HMAC over the signer address
    // and the JSON under TOLLHOUSE_SECRET (service.ts says why not an EIP-191 signature).
    const stateJson = Buffer.from(first.body.state.State, 'base64');
    expect(Buffer.from(first.body.state.Sig, 'base64')).toEqual(
      world.t.app.secrets.hmacBytes('signer-state', [getBytes(signer), stateJson]),
    );
    const state1 = JSON.parse(stateJson.toString()) as Record<string, unknown>;
    expect(state1).toMatchObject({
      PMSessionID: orch.recipientRandHash,
      SenderNonce: 2,
      SequenceNumber: 0,
      InitialPricePerUnit: 1000,
      InitialPixelsPerUnit: 1,
      OrchestratorAddress: orch.wallet.address.toLowerCase(),
    });

    // segCreds: SegData for the empty segment, signed by the signer.
    const seg = world.wire.decode('SegData', Buffer.from(first.body.segCreds, 'base64')) as {
      manifestId: Uint8Array;
      hash: Uint8Array;
      sig: Uint8Array;
      authToken: { sessionId: string };
    };
    expect(Buffer.from(seg.manifestId).toString()).toBe('stream-1');
    expect(hexlify(seg.hash)).toBe(keccak256(new Uint8Array(0)));
    expect(seg.authToken.sessionId).toBe('session-1');
    // Verified as the orchestrator verifies it (core/orchestrator.go VerifySig):
    // EIP-191 over keccak256 of the flattened segment data.
    expect(segCredsSigner(world.wire, first.body.segCreds)).toEqual({
      signer,
      manifestId: 'stream-1',
      seq: 0n,
      hash: keccak256(new Uint8Array(0)),
    });

    // Second call, small (1e11 wei): the credit (~0.5 EV) is below max(fee, EV) → 1 ticket,
    // leaving ~1.4 EV of credit.
    const second = await pay(
      paymentBody(info, { ManifestID: 'stream-1', inPixels: 100_000_000 }, first.body.state),
    );
    expect(second.status).toBe(200);
    expect(
      receivePayment(world.wire, second.body.payment, signer).map((t) => t.senderNonce),
    ).toEqual([3n]);

    // Third call, small again: the credit covers max(fee, EV) → 482, no state.
    const third = await pay(
      paymentBody(info, { ManifestID: 'stream-1', inPixels: 100_000_000 }, second.body.state),
    );
    expect(third.status).toBe(482);
    expect(third.body).toEqual({ error: { message: 'no tickets' } });

    // Fourth call, with the state of the last 200 (as the gateway keeps it): 2e12 wei.
    const fourth = await pay(
      paymentBody(info, { ManifestID: 'stream-1', inPixels: 2_000_000_000 }, second.body.state),
    );
    expect(fourth.status).toBe(200);
    const tickets4 = receivePayment(world.wire, fourth.body.payment, signer);
    expect(tickets4.map((t) => t.senderNonce)).toEqual([4n]);
    const state4 = JSON.parse(Buffer.from(fourth.body.state.State, 'base64').toString()) as Record<
      string,
      unknown
    >;
    expect(state4.SequenceNumber).toBe(2);
    expect(state4.StateID).toBe(state1.StateID);

    // Each signed payment is one usage event, committed before the response.
    const events = await signerUsageEvents(world.handle);
    expect(events.map((e) => e.event_id)).toEqual(
      [0, 1, 2].map((seq) => `${String(state1.StateID)}:${seq}`),
    );
    expect(events[0]).toMatchObject({
      account_id: world.key.accountId,
      key_id: world.key.keyId,
      pipeline: 'live-video-to-video',
      unit: 'pixels',
      quantity: '1500000000',
      fee_wei: '1500000000000',
    });
    expect(events[0]!.attributes).toMatchObject({
      tickets: 2,
      manifestId: 'stream-1',
      orchestratorAddress: orch.wallet.address.toLowerCase(),
      orchestratorUrl: orch.url,
      stateId: state1.StateID,
      sequenceNumber: '0',
    });
    const rows = await sessionRows(world.handle);
    expect(rows.find((r) => r.state_id === state1.StateID)?.last_seq).toBe(2n);

    // The orchestrator redeems every ticket of every payment on the real TicketBroker (win
    // probability 2^256 − 2: each one wins), each getTicketHash equal to the signed hash; the
    // signer's deposit drops by exactly the face values, the reserve is untouched.
    const tickets2 = receivePayment(world.wire, second.body.payment, signer);
    const all = [...tickets1, ...tickets2, ...tickets4];
    expect(all.map((t) => t.senderNonce)).toEqual([1n, 2n, 3n, 4n]);
    const before = await senderFunds(world, signer);
    const paid = await redeemEveryTicket(world, orch, all);
    expect(paid).toBe(4n * 1_000_000_000_000n);
    const after = await senderFunds(world, signer);
    expect(before.deposit - after.deposit).toBe(paid);
    expect(after.reserve).toBe(before.reserve);
    // The same ticket cannot be redeemed twice.
    const broker = world.livepeer.ticketBroker.connect(orch.wallet) as Contract;
    await expect(
      broker.getFunction('redeemWinningTicket')(
        ticketTuple(tickets4[0]!),
        tickets4[0]!.sig,
        orch.recipientRand,
      ),
    ).rejects.toThrow(/ticket is used/);
  });

  it('bills live seconds (10 s on the first call) and records the live pipeline', async () => {
    const orch = testOrchestrator(world);
    const info = await orch.info({ pricePerUnit: 50_000_000_000n, faceValue: 1_000_000_000_000n });
    const res = await pay(paymentBody(info, { ManifestID: 'live-1', type: 'live' }));
    expect(res.status).toBe(200);
    const tickets = receivePayment(world.wire, res.body.payment, world.account.wallet.address);
    expect(tickets).toHaveLength(1);
    const state = JSON.parse(Buffer.from(res.body.state.State, 'base64').toString()) as {
      StateID: string;
    };
    const event = (await signerUsageEvents(world.handle)).find(
      (e) => e.event_id === `${state.StateID}:0`,
    );
    expect(event).toMatchObject({
      pipeline: 'live',
      unit: 'seconds',
      quantity: '10',
      fee_wei: '500000000000',
    });
  });

  it('answers 480 with the orchestrator URL when the auth token or the ticket params are about to expire', async () => {
    const orch = testOrchestrator(world);
    const now = BigInt(Math.floor(Date.now() / 1000));
    const expiring = await pay(
      paymentBody(await orch.info({ authExpiresAt: now + 100n }), { inPixels: 1000 }),
    );
    expect(expiring.status).toBe(480);
    expect(expiring.headers.get('livepeer-orchestrator-url')).toBe(orch.url);
    expect(expiring.body.error.message).toMatch(/auth token/);

    const block = BigInt(await world.anvil.provider.getBlockNumber());
    const stale = await pay(
      paymentBody(await orch.info({ expirationBlock: block + 1n }), { inPixels: 1000 }),
    );
    expect(stale.status).toBe(480);
    expect(stale.body.error.message).toMatch(/ticket params expired/);

    // Refreshed info (what the gateway fetches after a 480) is paid.
    const fresh = await pay(paymentBody(await orch.info(), { inPixels: 1000 }));
    expect(fresh.status).toBe(200);
  });

  it('refreshes at expiration − 180 s to the millisecond, and refuses params whose expiration block is 0 (go-livepeer pm/sender.go validateTicketParams)', async () => {
    const orch = testOrchestrator(world);
    // Due once now is after (expiration − 180 s): any instant after that whole second is.
    const second = BigInt(Math.floor(Date.now() / 1000));
    const due = await pay(
      paymentBody(await orch.info({ authExpiresAt: second + 180n }), { inPixels: 1000 }),
    );
    expect(due.status).toBe(480);
    const notDue = await pay(
      paymentBody(await orch.info({ authExpiresAt: second + 240n }), { inPixels: 1000 }),
    );
    expect(notDue.status).toBe(200);
    // pm/sender.go validateTicketParams at its head: "ticketParams expiration block is 0",
    // which server/broadcast.go shouldRefreshSession passes on as an error (not a refresh), so
    // server/remote_signer.go answers 400.
    const noExpiry = await pay(
      paymentBody(await orch.info({ expirationBlock: 0n }), { inPixels: 1000 }),
    );
    expect(noExpiry.status).toBe(400);
    expect(noExpiry.body).toEqual({
      error: {
        message:
          'remote signer could not check whether to refresh session: ticketParams expiration block is 0',
      },
    });
  });

  it('lets a state without a job type continue with one (go-livepeer), and keeps it from then on', async () => {
    const orch = testOrchestrator(world);
    const info = await orch.info();
    const first = await pay(paymentBody(info, { ManifestID: 'typed', inPixels: 1_500_000_000 }));
    expect(first.status).toBe(200);
    const live = await pay(
      paymentBody(info, { ManifestID: 'typed', type: 'live' }, first.body.state),
    );
    expect(live.status).toBe(200);
    const state = JSON.parse(Buffer.from(live.body.state.State, 'base64').toString()) as {
      Type: string;
    };
    expect(state.Type).toBe('live');
    const fixed = await pay(
      paymentBody(info, { ManifestID: 'typed', type: 'fixed' }, live.body.state),
    );
    expect(fixed.status).toBe(400);
    expect(fixed.body.error.message).toBe('job type mismatch');
  });

  it('answers 481 when the orchestrator price is above the request maxPrice', async () => {
    const orch = testOrchestrator(world);
    const res = await pay(
      paymentBody(await orch.info({ pricePerUnit: 2000n }), {
        type: 'fixed',
        maxPrice: { price: '1500', currency: 'wei', unit: 'fixed' },
      }),
    );
    expect(res.status).toBe(481);
    expect(res.body.error.message).toMatch(/maxPrice/);
  });
});
