// Hostile and unauthorized callers of the remote-signer endpoints: every refusal is a 4xx with
// go-livepeer's `{"error":{"message"}}` body, and none signs — no usage event is written and no
// session moves.
import { sql } from 'kysely';
import { Wallet } from 'ethers';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { PaymentRequired } from '../../src/platform/spend.ts';
import { bearer, call, issueKey } from '../support/credentials.ts';
import {
  paymentBody,
  sessionRows,
  signerUsageEvents,
  startRemoteSignerWorld,
  testOrchestrator,
} from './remote-support.ts';
import type { RemoteSignerWorld, TestOrchestrator } from './remote-support.ts';
import { newAccount } from '../support/fixtures.ts';

let world: RemoteSignerWorld;
let orch: TestOrchestrator;
let refuseSpend = false;
vi.setConfig({ testTimeout: 60_000, hookTimeout: 120_000 });

beforeAll(async () => {
  world = await startRemoteSignerWorld({
    spend: {
      assertMaySpend() {
        if (refuseSpend) throw new PaymentRequired('Spend limit reached for this month');
      },
    },
  });
  orch = testOrchestrator(world);
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => {
  refuseSpend = false;
});

const pay = (body: unknown, headers: Record<string, string> = bearer(world.key.secret)) =>
  call(world.t, 'POST', '/generate-live-payment', { headers, body });
const payRaw = (raw: string, headers: Record<string, string> = bearer(world.key.secret)) =>
  call(world.t, 'POST', '/generate-live-payment', { headers, raw });

const seqs = async () =>
  (await sessionRows(world.handle)).map((s) => `${s.state_id}:${s.last_seq}`).sort();

/** Snapshot of what signing would change: usage events and session sequence numbers. */
async function ledger() {
  const events = await signerUsageEvents(world.handle);
  const sessions = await sessionRows(world.handle);
  return {
    events: events.map((e) => e.event_id).sort(),
    sessions: sessions.map((s) => `${s.state_id}:${s.last_seq}`).sort(),
  };
}

/** Runs `attempt` and checks it was refused with `status` and a message, and signed nothing. */
async function refused(
  attempt: () => Promise<{ status: number; body: { error: { message: string } } }>,
  status: number,
  message: RegExp,
) {
  const before = await ledger();
  const res = await attempt();
  expect(res.status).toBe(status);
  expect(Object.keys(res.body)).toEqual(['error']);
  expect(res.body.error.message).toMatch(message);
  expect(await ledger()).toEqual(before);
  return res;
}

/** A first payment; its state is what the state tests tamper with. */
async function session(extra: Record<string, unknown> = {}) {
  const res = await pay(
    paymentBody(await orch.info(), { ManifestID: 'm1', inPixels: 1_000_000, ...extra }),
  );
  expect(res.status).toBe(200);
  return res.body.state as { State: string; Sig: string };
}

describe('authorization, before anything is signed', () => {
  it('refuses a missing or unknown credential with 401', async () => {
    const body = paymentBody(await orch.info(), { inPixels: 1000 });
    await refused(() => pay(body, {}), 401, /Invalid API key/);
    await refused(
      () => pay(body, bearer('th_sk_not_a_real_key_000000000000')),
      401,
      /Invalid API key/,
    );
    await refused(
      () => call(world.t, 'POST', '/sign-orchestrator-info', {}),
      401,
      /Invalid API key/,
    );
  });

  it('refuses a key without the signer scope with 403', async () => {
    const key = await issueKey(world.t, world.key.accountId, { scopes: ['usage:read'] });
    await refused(
      async () => pay(paymentBody(await orch.info(), { inPixels: 1000 }), bearer(key.secret)),
      403,
      /signer scope/,
    );
  });

  it('refuses a browser key with 403', async () => {
    const key = await issueKey(world.t, world.key.accountId, {
      kind: 'browser',
      scopes: ['gateway'],
      allowedOrigins: ['https://app.example'],
      allowedResources: ['live-video-to-video'],
    });
    await refused(
      async () =>
        pay(
          paymentBody(await orch.info(), { inPixels: 1000 }),
          bearer(key.secret, { origin: 'https://app.example' }),
        ),
      403,
      /Browser keys/,
    );
  });

  it("refuses with 402 when billing's spend check says no", async () => {
    refuseSpend = true;
    await refused(
      async () => pay(paymentBody(await orch.info(), { inPixels: 1000 })),
      402,
      /Spend limit reached/,
    );
  });
});

describe('malformed requests', () => {
  it('refuses bad JSON, wrong types and bad base64', async () => {
    const info = await orch.info();
    await refused(() => payRaw('{"orchestrator":'), 400, /not valid JSON/);
    await refused(() => payRaw('[1,2]'), 400, /JSON object/);
    await refused(() => pay(paymentBody('not base64!!')), 400, /orchestrator must be base64/);
    await refused(() => pay(paymentBody(info, { inPixels: '1000' })), 400, /inPixels/);
    await refused(() => pay(paymentBody(info, { inPixels: 1.5 })), 400, /inPixels/);
    await refused(() => pay(paymentBody(info, { ManifestID: 7 })), 400, /ManifestID/);
    await refused(() => pay({ state: 'x', orchestrator: info }), 400, /state must be an object/);
    await refused(() => pay(paymentBody(info, { capabilities: '%%%' })), 400, /capabilities/);
    await refused(() => pay(paymentBody('')), 400, /missing orchestrator/);
  });

  it('refuses bad protobuf', async () => {
    // Field 2 (ticket_params) claims 5 bytes and carries 2.
    const truncated = Buffer.from([0x12, 0x05, 0x0a, 0x00]).toString('base64');
    await refused(
      () => pay(paymentBody(truncated, { inPixels: 1000 })),
      400,
      /invalid orchestrator info/,
    );
    await refused(
      () =>
        pay(paymentBody(Buffer.from([0xff, 0xff, 0xff]).toString('base64'), { inPixels: 1000 })),
      400,
      /invalid orchestrator info/,
    );
    await refused(
      async () =>
        pay(
          paymentBody(await orch.info(), {
            inPixels: 1000,
            capabilities: Buffer.from([0x0a, 0x09]).toString('base64'),
          }),
        ),
      400,
      /invalid capabilities/,
    );
  });

  it('refuses a zero or missing price, a missing auth token, a bad job type, no units', async () => {
    await refused(
      async () => pay(paymentBody(await orch.info({ pricePerUnit: 0n }), { inPixels: 1000 })),
      400,
      /zero priceInfo/,
    );
    await refused(
      async () => pay(paymentBody(await orch.info({ omitPrice: true }), { inPixels: 1000 })),
      400,
      /priceInfo/,
    );
    await refused(
      async () => pay(paymentBody(await orch.info({ omitAuthToken: true }), { inPixels: 1000 })),
      400,
      /missing auth token/,
    );
    await refused(
      async () => pay(paymentBody(await orch.info(), { type: 'transcode' })),
      400,
      /invalid job type/,
    );
    await refused(
      async () => pay(paymentBody(await orch.info(), { inPixels: 0 })),
      400,
      /billable units/,
    );
    await refused(
      async () =>
        pay(
          paymentBody(await orch.info(), {
            type: 'live',
            maxPrice: { price: '1', currency: 'wei', unit: 'pixels' },
          }),
        ),
      400,
      /^maxPrice\.unit must be seconds for payment type live$/,
    );
  });

  it('refuses a payment that needs more than 100 tickets', async () => {
    // 1e10 wei tickets, 2e12 wei fee: 200 tickets.
    await refused(
      async () =>
        pay(
          paymentBody(await orch.info({ faceValue: 10_000_000_000n, pricePerUnit: 1000n }), {
            inPixels: 2_000_000_000,
          }),
        ),
      400,
      /too many tickets/,
    );
  });

  it('refuses a 10 MB body with 413 without reading it all', async () => {
    const raw = JSON.stringify({ orchestrator: 'A'.repeat(10 * 1024 * 1024) });
    await refused(() => payRaw(raw), 413, /larger than/);
  });

  it("refuses tickets above the maximum ticket EV at the refresh check (go-livepeer's 400 with the reason)", async () => {
    await refused(
      async () =>
        pay(paymentBody(await orch.info({ faceValue: 5_000_000_000_000n }), { inPixels: 1000 })),
      400,
      /^remote signer could not check whether to refresh session: ticket EV 5000000000000\.00000 > max ticket EV 3000000000000\.00000$/,
    );
  });

  it("refuses a batch above the maximum total EV when creating it (go-livepeer's 500 with the reason)", async () => {
    // ~1e12 wei tickets (EV just below the face value), 3e13 wei fee: 31 tickets, > 2e13 wei.
    await refused(
      async () =>
        pay(paymentBody(await orch.info({ pricePerUnit: 1000n }), { inPixels: 30_000_000_000 })),
      500,
      /^total ticket EV 31000000000000\.00000 for 31 tickets > max total ticket EV 20000000000000\.00000$/,
    );
  });
});

describe('state', () => {
  it('refuses a state signed like go-livepeer would (EIP-191), even by the signer key', async () => {
    const state = await session();
    const info = await orch.info();
    const json = JSON.parse(Buffer.from(state.State, 'base64').toString()) as Record<
      string,
      unknown
    >;
    json.Balance = '1000000000000000000';
    const tampered = Buffer.from(JSON.stringify(json));
    const sig = Buffer.from((await world.account.wallet.signMessage(tampered)).slice(2), 'hex');
    await refused(
      () =>
        pay(
          paymentBody(
            info,
            { ManifestID: 'm1', inPixels: 1000 },
            { State: tampered.toString('base64'), Sig: sig.toString('base64') },
          ),
        ),
      400,
      /invalid sig/,
    );
  });

  it('accepts the state it handed out last whatever seals it (states from before an upgrade)', async () => {
    const state = await session();
    const info = await orch.info();
    // What an older tollhouse handed out: the same JSON with an EIP-191 signature, recorded
    // as the session's last state digest.
    const json = Buffer.from(state.State, 'base64');
    const sig = Buffer.from((await world.account.wallet.signMessage(json)).slice(2), 'hex');
    const stateId = (JSON.parse(json.toString()) as { StateID: string }).StateID;
    await sql`update signer_sessions
      set last_state_digest = encode(sha256(${Buffer.concat([json, sig])}), 'hex')
      where state_id = ${stateId}`.execute(world.handle.db);
    const res = await pay(
      paymentBody(
        info,
        { ManifestID: 'm1', inPixels: 1_000_000 },
        { State: state.State, Sig: sig.toString('base64') },
      ),
    );
    expect(res.status).toBe(200);
    // …and only the one handed out last: the HMAC-sealed copy is no longer current.
    await refused(
      () => pay(paymentBody(info, { ManifestID: 'm1', inPixels: 1_000_000 }, state)),
      400,
      /replayed/,
    );
  });

  it('refuses a forged state (signed by another key) and a tampered one', async () => {
    const state = await session();
    const info = await orch.info();
    const forger = Wallet.createRandom();
    const forgedSig = Buffer.from(
      await forger
        .signMessage(Buffer.from(state.State, 'base64'))
        .then((s) => Buffer.from(s.slice(2), 'hex')),
    ).toString('base64');
    await refused(
      () =>
        pay(
          paymentBody(
            info,
            { ManifestID: 'm1', inPixels: 1000 },
            { State: state.State, Sig: forgedSig },
          ),
        ),
      400,
      /invalid sig/,
    );

    const json = JSON.parse(Buffer.from(state.State, 'base64').toString()) as Record<
      string,
      unknown
    >;
    json.Balance = '1000000000000000000';
    const tampered = Buffer.from(JSON.stringify(json)).toString('base64');
    await refused(
      () =>
        pay(
          paymentBody(
            info,
            { ManifestID: 'm1', inPixels: 1000 },
            { State: tampered, Sig: state.Sig },
          ),
        ),
      400,
      /invalid sig/,
    );
    await refused(
      () =>
        pay(
          paymentBody(
            info,
            { ManifestID: 'm1', inPixels: 1000 },
            { State: state.State, Sig: null },
          ),
        ),
      400,
      /invalid sig/,
    );
  });

  it('refuses a replayed state, also when two requests race with it', async () => {
    const state = await session();
    const body = paymentBody(
      await orch.info(),
      { ManifestID: 'm1', inPixels: 5_000_000_000 },
      state,
    );
    const results = await Promise.all([pay(body), pay(body), pay(body)]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 400, 400]);
    await refused(() => pay(body), 400, /replayed/);
  });

  it('refuses a state from another app, another account, another orchestrator, or without ManifestID', async () => {
    const state = await session({ app: 'app-a', type: 'fixed' });
    const info = await orch.info();
    await refused(
      () => pay(paymentBody(info, { ManifestID: 'm1', app: 'app-b', type: 'fixed' }, state)),
      400,
      /app mismatch/,
    );
    await refused(
      () => pay(paymentBody(info, { ManifestID: 'm1', app: 'app-a', type: 'live' }, state)),
      400,
      /job type mismatch/,
    );
    await refused(
      () => pay(paymentBody(info, { app: 'app-a', type: 'fixed' }, state)),
      400,
      /missing manifestID/,
    );
    const other = testOrchestrator(world);
    await refused(
      async () =>
        pay(
          paymentBody(
            await other.info(),
            { ManifestID: 'm1', app: 'app-a', inPixels: 1000 },
            state,
          ),
        ),
      400,
      /orchestratorAddress mismatch/,
    );

    const stranger = await issueKey(world.t, await newAccount(world.t), { scopes: ['signer'] });
    await refused(
      () =>
        pay(
          paymentBody(info, { ManifestID: 'm1', app: 'app-a', type: 'fixed' }, state),
          bearer(stranger.secret),
        ),
      403,
      /another account/,
    );
    // The owner still can.
    expect(
      (await pay(paymentBody(info, { ManifestID: 'm1', app: 'app-a', type: 'fixed' }, state)))
        .status,
    ).toBe(200);
  });

  it('accepts keys in any case, as Go does', async () => {
    const res = await pay({
      STATE: { state: null, sig: null },
      Orchestrator: await orch.info(),
      manifestid: 'm2',
      INPIXELS: 1000,
    });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body)).toEqual(['payment', 'segCreds', 'state']);
    expect(Object.keys(res.body.state)).toEqual(['State', 'Sig']);
  });
});

describe('metering failure', () => {
  it('answers 500 without the signed state and leaves the session where it was', async () => {
    const state = await session();
    const body = paymentBody(
      await orch.info(),
      { ManifestID: 'm1', inPixels: 5_000_000_000 },
      state,
    );
    await sql`alter table usage_events rename to usage_events_away`.execute(world.handle.db);
    try {
      const before = await seqs();
      const res = await pay(body);
      expect(res.status).toBe(500);
      expect(res.body.state).toBeUndefined();
      expect(await seqs()).toEqual(before);
    } finally {
      await sql`alter table usage_events_away rename to usage_events`.execute(world.handle.db);
    }
    // The gateway's retry with the same state succeeds once metering is back.
    expect((await pay(body)).status).toBe(200);
  });
});

describe('GET /discover-orchestrators', () => {
  it('answers 503 with the go-livepeer error body when no orchestrators are configured', async () => {
    const res = await call(world.t, 'GET', '/discover-orchestrators?caps=x', {
      headers: bearer(world.key.secret),
    });
    expect(res.status).toBe(503);
    expect(res.body.error.message).toMatch(/no orchestrators/);
  });
});
