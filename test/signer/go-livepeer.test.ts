// Conformance with go-livepeer: one test per behaviour a go-livepeer gateway or orchestrator
// relies on, each naming the upstream file and function it mirrors (go-livepeer at
// 176aa415, after v0.9.1). The requests are built byte for byte as Go builds them, the
// answers are read as Go reads them, and the tickets are redeemed on the real TicketBroker.
import { getBytes, hexlify, keccak256, toUtf8Bytes, verifyMessage } from 'ethers';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startServer } from '../../src/platform/server.ts';
import type { RunningServer } from '../../src/platform/server.ts';
import { createLogger } from '../../src/platform/log.ts';
import { bearer } from '../support/credentials.ts';
import { createResponseValidator } from '../support/openapi.ts';
import {
  receivePayment,
  redeemEveryTicket,
  segCredsSigner,
  senderFunds,
  startRemoteSignerWorld,
  testOrchestrator,
} from './remote-support.ts';
import type { RemoteSignerWorld } from './remote-support.ts';

let world: RemoteSignerWorld;
let signerOnly: RunningServer;
vi.setConfig({ testTimeout: 60_000, hookTimeout: 120_000 });

beforeAll(async () => {
  world = await startRemoteSignerWorld();
  // The SIGNER_PORT listener, as `tollhouse serve` starts it.
  signerOnly = await startServer(world.t.app.signerHandler, {
    host: '127.0.0.1',
    port: 0,
    shutdownTimeoutMs: 1000,
    log: createLogger({ level: 'silent' }),
  });
});
afterAll(async () => {
  await signerOnly?.close();
  await world?.close();
});

/**
 * Go's `base.ResolveReference(&url.URL{Path: p})` (net/url, RFC 3986 §5.2.2): an absolute
 * path replaces the base's whole path and drops its query. WHATWG URL parsing resolves an
 * absolute-path reference against an http(s) base by the same rule.
 */
const resolve = (remoteSignerUrl: string, path: string) => new URL(path, remoteSignerUrl).href;

/** server/remote_signer.go RemotePaymentRequest, as Go's json.Marshal writes it. */
interface GoRequest {
  state: { State: string | null; Sig: string | null };
  orchestrator: string;
  ManifestID: string;
  app: string;
  inPixels: bigint;
  type: string;
  maxPrice: { price: string; currency: string; unit: string } | null;
  capabilities: string | null;
}

/**
 * encoding/json: fields in struct order; `state` is a struct, so `omitempty` never drops it
 * and nil []byte fields inside are `null`; `ManifestID` has no tag (the Go name is the key);
 * `app` and `maxPrice` are omitempty; `inPixels` is an int64 number; a nil `capabilities`
 * []byte is `null`; json.Number `price` is written bare.
 */
function goMarshal(r: GoRequest): string {
  const s = JSON.stringify;
  return (
    `{"state":{"State":${s(r.state.State)},"Sig":${s(r.state.Sig)}},` +
    `"orchestrator":${s(r.orchestrator)},"ManifestID":${s(r.ManifestID)},` +
    (r.app === '' ? '' : `"app":${s(r.app)},`) +
    `"inPixels":${r.inPixels},"type":${s(r.type)},` +
    (r.maxPrice === null
      ? ''
      : `"maxPrice":{"price":${r.maxPrice.price},"currency":${s(r.maxPrice.currency)},"unit":${s(r.maxPrice.unit)}},`) +
    `"capabilities":${s(r.capabilities)}}`
  );
}

const goRequest = (orchestrator: string, o: Partial<GoRequest> = {}): GoRequest => ({
  state: { State: null, Sig: null },
  orchestrator,
  ManifestID: '',
  app: '',
  inPixels: 0n,
  type: '',
  maxPrice: null,
  capabilities: null,
  ...o,
});

/** server/live_payment.go: POST, Content-Type application/json, -remoteSignerHeaders. */
async function post(url: string, body: string | null, headers = bearer(world.key.secret)) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: body ?? undefined,
  });
  const text = await response.text();

  return { status: response.status, headers: response.headers, body: JSON.parse(text) };
}

const generate = (base: string, request: GoRequest) =>
  post(resolve(base, '/generate-live-payment'), goMarshal(request));

describe('URL resolution (server/live_payment.go, server/remote_signer.go GetOrchInfoSig, cmd/livepeer/starter/starter.go)', () => {
  it('reaches every route from -remoteSignerUrl with no path, with a path, and on SIGNER_PORT', async () => {
    const orch = testOrchestrator(world);
    const bases = [
      world.t.url,
      `${world.t.url}/`,
      `${world.t.url}/anything`,
      `${world.t.url}/signer/`,
      `http://127.0.0.1:${signerOnly.port}`,
      `http://127.0.0.1:${signerOnly.port}/some/path?x=1`,
    ];
    for (const base of bases) {
      expect(resolve(base, '/generate-live-payment')).toMatch(
        /^http:\/\/127\.0\.0\.1:\d+\/generate-live-payment$/,
      );
      // GetOrchInfoSig: a POST without a body.
      const info = await post(resolve(base, '/sign-orchestrator-info'), null);
      expect(info.status, base).toBe(200);
      expect(info.body.address).toBe(world.account.wallet.address);
      const paid = await generate(base, goRequest(await orch.info(), { inPixels: 1_000_000n }));
      expect(paid.status, base).toBe(200);
    }
  });

  it('serves only the signer and health on SIGNER_PORT, and answers 404/405 there in go-livepeer’s shape', async () => {
    const base = `http://127.0.0.1:${signerOnly.port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const keys = await fetch(`${base}/v1/keys`, { headers: bearer(world.key.secret) });
    expect(keys.status).toBe(404);
    expect(await keys.json()).toEqual({ error: { message: 'no route for GET /v1/keys' } });
    const wrong = await fetch(`${base}/generate-live-payment`, {
      headers: bearer(world.key.secret),
    });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    expect(await wrong.json()).toEqual({ error: { message: 'GET is not allowed; use POST' } });
  });

  it('answers a wrong method at the root of the main listener in go-livepeer’s shape too', async () => {
    const res = await fetch(`${world.t.url}/sign-orchestrator-info`, { method: 'PUT' });
    expect(res.status).toBe(405);
    expect(await res.json()).toEqual({ error: { message: 'PUT is not allowed; use POST' } });
  });
});

describe('POST /sign-orchestrator-info (server/remote_signer.go SignOrchestratorInfo)', () => {
  it('signs as core/broadcaster.go Sign signs the address, for an empty body and for the Python client’s {}', async () => {
    for (const body of [null, '{}']) {
      const res = await post(resolve(world.t.url, '/sign-orchestrator-info'), body);
      expect(res.status).toBe(200);
      // OrchInfoSigResponse: HexBytes fields (0x-hex); verified as
      // server/rpc.go verifyOrchestratorReq → VerifySig(keccak256(address.Hex())) checks it.
      expect(res.body.address).toBe(world.account.wallet.address);
      const message = getBytes(keccak256(toUtf8Bytes(world.account.wallet.address)));
      expect(verifyMessage(message, res.body.signature)).toBe(world.account.wallet.address);
    }
  });
});

describe('POST /generate-live-payment (server/remote_signer.go GenerateLivePayment)', () => {
  it('accepts the request as Go marshals it, bare or PaymentResult-wrapped orchestrator info, null state', async () => {
    const orch = testOrchestrator(world);
    const bare = await orch.info();
    // server/ai_http.go and server/segment_rpc.go hand gateways a PaymentResult{info = 16}.
    const info = world.wire.decode('OrchestratorInfo', Buffer.from(bare, 'base64'));
    const wrapped = Buffer.from(world.wire.encode('PaymentResult', { info })).toString('base64');
    for (const orchestrator of [bare, wrapped]) {
      const body = goMarshal(goRequest(orchestrator, { inPixels: 1_000_000n }));
      expect(body).toContain('"state":{"State":null,"Sig":null}');
      expect(body).toContain('"ManifestID":""');
      expect(body).toContain('"capabilities":null');
      const res = await post(resolve(world.t.url, '/generate-live-payment'), body);
      expect(res.status).toBe(200);
      // RemotePaymentResponse: payment, segCreds, state{State, Sig} — base64.
      expect(Object.keys(res.body)).toEqual(['payment', 'segCreds', 'state']);
      expect(Object.keys(res.body.state)).toEqual(['State', 'Sig']);
      expect(
        receivePayment(world.wire, res.body.payment, world.account.wallet.address),
      ).toHaveLength(1);
    }
  });

  it('signs segCreds as core/broadcaster.go Sign, verified as core/orchestrator.go VerifySig does', async () => {
    const orch = testOrchestrator(world);
    const res = await generate(
      world.t.url,
      goRequest(await orch.info(), { ManifestID: 'conformance-seg', inPixels: 1_000_000n }),
    );
    expect(res.status).toBe(200);
    const seg = segCredsSigner(world.wire, res.body.segCreds);
    expect(seg).toEqual({
      signer: world.account.wallet.address,
      manifestId: 'conformance-seg',
      seq: 0n,
      hash: keccak256(new Uint8Array(0)),
    });
  });

  it('answers 480 with Livepeer-Orchestrator-URL (broadcast.go shouldRefreshSession), in go-livepeer’s error body', async () => {
    const orch = testOrchestrator(world);
    const block = BigInt(await world.anvil.provider.getBlockNumber());
    const res = await generate(
      world.t.url,
      goRequest(await orch.info({ expirationBlock: block + 1n }), { inPixels: 1000n }),
    );
    expect(res.status).toBe(480);
    expect(res.headers.get('livepeer-orchestrator-url')).toBe(orch.url);
    expect(res.body).toEqual({ error: { message: 'ticket params expired' } });
  });

  it('answers 481 naming the lowest ceiling (remote_signer.go checkRemotePaymentPrice)', async () => {
    const orch = testOrchestrator(world);
    const res = await generate(
      world.t.url,
      goRequest(await orch.info({ pricePerUnit: 2000n }), {
        type: 'fixed',
        maxPrice: { price: '1500', currency: 'wei', unit: 'fixed' },
      }),
    );
    expect(res.status).toBe(481);
    expect(res.body).toEqual({
      error: { message: 'orchestrator price 2000.000 exceeds request maxPrice ceiling 1500.000' },
    });
  });

  it('answers 482 "no tickets" without a state when the credit covers the fee (HTTPStatusNoTickets)', async () => {
    const orch = testOrchestrator(world);
    const info = await orch.info({ pricePerUnit: 1n, faceValue: 1_000_000_000_000n });
    // Fee 1.5 EV → 2 tickets, credit 0.5 EV; fee 0.1 EV → minCredit = EV → 1 ticket, credit
    // 1.4 EV; fee 0.1 EV again → the credit covers max(fee, EV): no tickets.
    const pixels = [1_500_000_000_000n, 100_000_000_000n];
    let state: GoRequest['state'] = { State: null, Sig: null };
    for (const inPixels of pixels) {
      const paid = await generate(
        world.t.url,
        goRequest(info, { ManifestID: 'm482', inPixels, state }),
      );
      expect(paid.status).toBe(200);
      state = paid.body.state;
    }
    const again = await generate(
      world.t.url,
      goRequest(info, { ManifestID: 'm482', inPixels: 100_000_000_000n, state }),
    );
    expect(again.status).toBe(482);
    expect(again.body).toEqual({ error: { message: 'no tickets' } });
  });

  it('refuses ticket params whose expiration block is 0 (pm/sender.go validateTicketParams)', async () => {
    const orch = testOrchestrator(world);
    const res = await generate(
      world.t.url,
      goRequest(await orch.info({ expirationBlock: 0n }), { inPixels: 1000n }),
    );
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/ticketParams expiration block is 0$/);
  });

  it('restarts the nonce when the orchestrator’s recipientRandHash changed (remote_signer.go "Reset nonce if session has been refreshed")', async () => {
    const orch = testOrchestrator(world);
    const signer = world.account.wallet.address;
    const first = await generate(
      world.t.url,
      goRequest(await orch.info(), { ManifestID: 'refreshed', inPixels: 1_500_000_000n }),
    );
    expect(first.status).toBe(200);
    expect(
      receivePayment(world.wire, first.body.payment, signer).map((t) => t.senderNonce),
    ).toEqual([1n, 2n]);
    const refreshedHash = keccak256(toUtf8Bytes('another recipientRand'));
    const second = await generate(
      world.t.url,
      goRequest(await orch.info({ recipientRandHash: refreshedHash }), {
        ManifestID: 'refreshed',
        inPixels: 1_500_000_000n,
        state: first.body.state,
      }),
    );
    expect(second.status).toBe(200);
    const tickets = receivePayment(world.wire, second.body.payment, signer);
    expect(tickets[0]!.senderNonce).toBe(1n);
    expect(tickets[0]!.recipientRandHash).toBe(refreshedHash);
    const state = JSON.parse(Buffer.from(second.body.state.State, 'base64').toString()) as {
      PMSessionID: string;
      SenderNonce: number;
    };
    expect(state.PMSessionID).toBe(refreshedHash);
    expect(state.SenderNonce).toBe(tickets.length);
  });

  it('carries the state across payments with a changing price; every ticket redeems and the deposit drops by the face values', async () => {
    const orch = testOrchestrator(world);
    const faceValue = 1_000_000_000_000n;
    const at = (pricePerUnit: bigint) => orch.info({ pricePerUnit, faceValue });
    const signer = world.account.wallet.address;
    const mid = 'conformance-state';
    const before = await senderFunds(world, signer);

    // 1: 1 000 wei/pixel, 1.5e9 pixels → fee 1.5e12 → 2 tickets (EV ≈ 1e12 each).
    const p1 = await generate(
      world.t.url,
      goRequest(await at(1000n), { ManifestID: mid, inPixels: 1_500_000_000n }),
    );
    expect(p1.status).toBe(200);
    // 2: the orchestrator lowered its price: accepted, the fee still at the initial price
    // (remote_signer.go "Compute required fee using initial price").
    const p2 = await generate(
      world.t.url,
      goRequest(await at(800n), {
        ManifestID: mid,
        inPixels: 1_000_000_000n,
        state: p1.body.state,
      }),
    );
    expect(p2.status).toBe(200);
    // 3: above the initial session price → 481, and the state is not consumed.
    const p3 = await generate(
      world.t.url,
      goRequest(await at(1500n), {
        ManifestID: mid,
        inPixels: 1_000_000_000n,
        state: p2.body.state,
      }),
    );
    expect(p3.status).toBe(481);
    expect(p3.body.error.message).toBe(
      'orchestrator price 1500.000 exceeds initial session price ceiling 1000.000',
    );
    // 4: back at the initial price, with the state of the last 200.
    const p4 = await generate(
      world.t.url,
      goRequest(await at(1000n), {
        ManifestID: mid,
        inPixels: 2_000_000_000n,
        state: p2.body.state,
      }),
    );
    expect(p4.status).toBe(200);

    const states = [p1, p2, p4].map(
      (p) =>
        JSON.parse(Buffer.from(p.body.state.State, 'base64').toString()) as Record<string, unknown>,
    );
    expect(states.map((s) => s.SequenceNumber)).toEqual([0, 1, 2]);
    expect(new Set(states.map((s) => s.StateID)).size).toBe(1);
    expect(states.map((s) => s.InitialPricePerUnit)).toEqual([1000, 1000, 1000]);
    const tickets = [p1, p2, p4].flatMap((p) => receivePayment(world.wire, p.body.payment, signer));
    expect(tickets.map((t) => t.senderNonce)).toEqual(tickets.map((_, i) => BigInt(i + 1)));
    expect(states.at(-1)!.SenderNonce).toBe(tickets.length);

    const paid = await redeemEveryTicket(world, orch, tickets);
    expect(paid).toBe(BigInt(tickets.length) * faceValue);
    const after = await senderFunds(world, signer);
    expect(before.deposit - after.deposit).toBe(paid);
    expect(after.reserve).toBe(before.reserve);
    expect(hexlify(getBytes(tickets[0]!.recipient))).toBe(orch.wallet.address.toLowerCase());
  });
});

describe('openapi.yaml', () => {
  it('describes what the signer routes answer, errors in go-livepeer’s shape', async () => {
    const validate = createResponseValidator();
    const info = await post(resolve(world.t.url, '/sign-orchestrator-info'), null);
    expect(validate('POST', '/sign-orchestrator-info', 200, info.body)).toBeNull();
    const orch = testOrchestrator(world);
    const paid = await generate(world.t.url, goRequest(await orch.info(), { inPixels: 1000n }));
    expect(validate('POST', '/generate-live-payment', 200, paid.body)).toBeNull();
    const refused = await generate(
      world.t.url,
      goRequest(await orch.info({ expirationBlock: 0n })),
    );
    expect(validate('POST', '/generate-live-payment', refused.status, refused.body)).toBeNull();
    // The validator rejects the REST error shape here, or this proves nothing.
    expect(
      validate('POST', '/generate-live-payment', 400, { error: 'BadRequest', message: 'x' }),
    ).not.toBeNull();
  });
});
