// A gateway shared by many customers sends its own key on every payment. With that key in
// SIGNER_SHARED_CREDENTIALS, each payment belongs to the owner of the stream its
// Tollhouse-Stream header names (a stream issued by /v1/streams): metered to that account,
// spend-checked against it, its session owned by it — end to end over HTTP, on anvil, with real
// keys and streams. The ManifestID stays what go-livepeer puts there (none on a session's first
// payment, then the orchestrator's own random job id) and names no stream.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PaymentRequired } from '../../src/platform/spend.ts';
import type { TestApp } from '../support/app.ts';
import { bearer, call, issueKey } from '../support/credentials.ts';
import {
  paymentBody,
  receivePayment,
  sessionRows,
  signerUsageEvents,
  startRemoteSignerWorld,
  startReplica,
  testOrchestrator,
} from './remote-support.ts';
import type { RemoteSignerWorld, TestOrchestrator } from './remote-support.ts';
import { newAccount } from '../support/fixtures.ts';

let world: RemoteSignerWorld;
let shared: TestApp;
let orch: TestOrchestrator;
const refused = new Set<string>();
// The operator's gateway key (shared), and two customers, each with a backend key and a stream.
let gateway: { secret: string; keyId: string; accountId: string };
const customers: Array<{
  accountId: string;
  keyId: string;
  secret: string;
  streamId: string;
  streamKey: string;
}> = [];

beforeAll(async () => {
  world = await startRemoteSignerWorld();
  const operator = await newAccount(world.t);
  const gatewayKey = await issueKey(world.t, operator, { scopes: ['signer'], name: 'gateway' });
  gateway = { secret: gatewayKey.secret, keyId: gatewayKey.key.id, accountId: operator };
  for (const name of ['alice', 'bob']) {
    const accountId = await newAccount(world.t);
    const key = await issueKey(world.t, accountId, { scopes: ['gateway', 'signer'] });
    const res = await call(world.t, 'POST', '/v1/streams', {
      headers: bearer(key.secret),
      body: { name },
    });
    expect(res.status).toBe(201);
    customers.push({
      accountId,
      keyId: key.key.id,
      secret: key.secret,
      streamId: res.body.id,
      streamKey: res.body.stream_key,
    });
  }
  // The gateway key is named in the settings, so the app that honours it starts after it exists.
  shared = await startReplica(world, {
    env: { SIGNER_SHARED_CREDENTIALS: `key_unrelated, ${gateway.keyId}` },
    spend: {
      assertMaySpend(principal) {
        if (refused.has(principal.accountId)) {
          throw new PaymentRequired('Spend limit reached for this month');
        }
      },
    },
  });
  orch = testOrchestrator(world);
});
afterAll(async () => {
  await shared?.close();
  await world?.close();
});

const pay = (body: unknown, stream?: string, secret = gateway.secret) =>
  call(shared, 'POST', '/generate-live-payment', {
    headers: { ...bearer(secret), ...(stream === undefined ? {} : { 'Tollhouse-Stream': stream }) },
    body,
  });
// The orchestrator's job id (server/ai_http.go: a RandomManifestID), as go-livepeer sends it.
const orchestratorMid = () => randomBytes(4).toString('hex');
const eventsOf = async (accountId: string) =>
  (await signerUsageEvents(world.handle)).filter((e) => e.account_id === accountId);

describe('a shared gateway credential', () => {
  it("meters each payment to the stream owner the Tollhouse-Stream header names, across the stream's session", async () => {
    const [alice] = customers;
    const info = await orch.info({ pricePerUnit: 1000n });
    // go-livepeer's sequence: no ManifestID with the job request, then the orchestrator's id.
    const first = await pay(paymentBody(info, { inPixels: 1_500_000_000 }), alice!.streamId);
    expect(first.status).toBe(200);
    receivePayment(world.wire, first.body.payment, world.account.wallet.address);
    const mid = orchestratorMid();
    const second = await pay(
      paymentBody(info, { ManifestID: mid, inPixels: 1_500_000_000 }, first.body.state),
      alice!.streamId,
    );
    expect(second.status).toBe(200);
    const segCreds = world.wire.decode('SegData', Buffer.from(second.body.segCreds, 'base64'));
    expect(Buffer.from(segCreds.manifestId as Uint8Array).toString()).toBe(mid);

    const state = JSON.parse(Buffer.from(second.body.state.State, 'base64').toString()) as {
      StateID: string;
      AuthID: string;
    };
    // The gateway's key authorized the session; the stream's owner pays for it.
    expect(state.AuthID).toBe(gateway.keyId);
    const events = await eventsOf(alice!.accountId);
    expect(events.map((e) => e.event_id)).toEqual([`${state.StateID}:0`, `${state.StateID}:1`]);
    for (const e of events) {
      expect(e).toMatchObject({ account_id: alice!.accountId, key_id: alice!.keyId });
      expect(e.attributes).toMatchObject({
        streamId: alice!.streamId,
        callerKeyId: gateway.keyId,
        callerAccountId: gateway.accountId,
        authId: gateway.keyId,
      });
    }
    expect(events[1]!.attributes).toMatchObject({ manifestId: mid });
    expect(await eventsOf(gateway.accountId)).toEqual([]);
    const session = (await sessionRows(world.handle)).find((r) => r.state_id === state.StateID);
    expect(session?.account_id).toBe(alice!.accountId);
  });

  it('also finds the stream by its stream key', async () => {
    const [, bob] = customers;
    const res = await pay(
      paymentBody(await orch.info(), { inPixels: 1_500_000_000 }),
      ` ${bob!.streamKey} `,
    );
    expect(res.status).toBe(200);
    const events = await eventsOf(bob!.accountId);
    expect(events).toHaveLength(1);
    expect(events[0]!.attributes).toMatchObject({ streamId: bob!.streamId });
  });

  it("applies the stream owner's spend check (402) before signing, not the gateway account's", async () => {
    const [alice, bob] = customers;
    const before = (await signerUsageEvents(world.handle)).length;
    const sessionsBefore = (await sessionRows(world.handle)).length;
    refused.add(alice!.accountId);
    try {
      const res = await pay(
        paymentBody(await orch.info(), { inPixels: 1_500_000_000 }),
        alice!.streamId,
      );
      expect(res.status).toBe(402);
      expect(res.body).toEqual({ error: { message: 'Spend limit reached for this month' } });
    } finally {
      refused.delete(alice!.accountId);
    }
    expect((await signerUsageEvents(world.handle)).length).toBe(before);
    expect((await sessionRows(world.handle)).length).toBe(sessionsBefore);

    // The operator's own account may be out of budget: its gateway still pays for streams.
    refused.add(gateway.accountId);
    try {
      const res = await pay(
        paymentBody(await orch.info(), { inPixels: 1_500_000_000 }),
        bob!.streamId,
      );
      expect(res.status).toBe(200);
      const info = await call(shared, 'POST', '/sign-orchestrator-info', {
        headers: bearer(gateway.secret),
      });
      expect(info.status).toBe(200);
    } finally {
      refused.delete(gateway.accountId);
    }
  });

  it('refuses (403) a Tollhouse-Stream that is no active stream, and none at all, signing nothing', async () => {
    const before = (await signerUsageEvents(world.handle)).length;
    const sessionsBefore = (await sessionRows(world.handle)).length;
    const info = await orch.info();
    for (const stream of ['str_notastream', 'stk_nope', 'my-own-stream', '']) {
      const res = await pay(paymentBody(info, { inPixels: 1_500_000_000 }), stream);
      expect(res.status, stream).toBe(403);
      expect(res.body.error.message).toMatch(/Tollhouse-Stream/);
    }
    // What a go-livepeer gateway sends: no header, the ManifestID absent, then the
    // orchestrator's id — even one equal to a stream id names no payer.
    const [alice] = customers;
    for (const extra of [{}, { ManifestID: orchestratorMid() }, { ManifestID: alice!.streamId }]) {
      const res = await pay(paymentBody(info, { ...extra, inPixels: 1_500_000_000 }));
      expect(res.status).toBe(403);
      expect(res.body.error.message).toMatch(/go-livepeer gateways send none/);
    }
    // A revoked stream is no stream (looked up for the first time here).
    const owner = await newAccount(world.t);
    const key = await issueKey(world.t, owner, { scopes: ['gateway'] });
    const created = await call(world.t, 'POST', '/v1/streams', {
      headers: bearer(key.secret),
      body: { name: 'gone' },
    });
    const revoked = await call(world.t, 'DELETE', `/v1/streams/${created.body.id}`, {
      headers: bearer(key.secret),
    });
    expect(revoked.status).toBe(200);
    const res = await pay(paymentBody(info, { inPixels: 1_500_000_000 }), created.body.id);
    expect(res.status).toBe(403);
    expect((await signerUsageEvents(world.handle)).length).toBe(before);
    expect((await sessionRows(world.handle)).length).toBe(sessionsBefore);
  });

  it("refuses (403) to carry one owner's session over to another owner's stream", async () => {
    const [alice, bob] = customers;
    const info = await orch.info();
    const first = await pay(paymentBody(info, { inPixels: 1_500_000_000 }), alice!.streamId);
    expect(first.status).toBe(200);
    const moved = await pay(
      paymentBody(
        info,
        { ManifestID: orchestratorMid(), inPixels: 1_500_000_000 },
        first.body.state,
      ),
      bob!.streamId,
    );
    expect(moved.status).toBe(403);
    expect(moved.body.error.message).toMatch(/another account/);
  });
});

describe('a credential that is not shared', () => {
  it("pays for itself whatever stream it names (no one else's account is charged)", async () => {
    const [alice, bob] = customers;
    const before = (await eventsOf(bob!.accountId)).length;
    const res = await pay(
      paymentBody(await orch.info(), { ManifestID: bob!.streamId, inPixels: 1_500_000_000 }),
      bob!.streamId,
      alice!.secret,
    );
    expect(res.status).toBe(200);
    expect((await eventsOf(bob!.accountId)).length).toBe(before);
    const mine = (await eventsOf(alice!.accountId)).at(-1)!;
    expect(mine).toMatchObject({ key_id: alice!.keyId });
    expect(mine.attributes).not.toHaveProperty('streamId');
  });
});
