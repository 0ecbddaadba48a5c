// The overshoot of a prepaid balance under real load across two replicas (issue #19): two apps
// with their own HTTP servers and spend views over one database, concurrent front-door
// requests (through the fake gateway) and remote-signer payments (tickets signed for a test
// orchestrator on anvil), until both refuse. The bound is docs/metering-and-billing.md's: what
// the account spends on all replicas in one refresh window, plus what was already admitted —
// here each replica's view is refreshed after every wave of requests (the refresh interval
// itself is an hour, so no timer refreshes), which makes the bound a count, not a timing:
//   overshoot ≤ replicas × requests per replica per wave × the largest fee of one request.
// The measured figure is printed (and reported in BENCHMARKS.md, prepaid section).
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import { adminKey, bearer, call, issueKey } from '../support/credentials.ts';
import { eventually } from '../support/eventually.ts';
import { startFakeGateway } from '../support/fake-gateway.ts';
import type { FakeGateway } from '../support/fake-gateway.ts';
import {
  paymentBody,
  startRemoteSignerWorld,
  startReplica,
  testOrchestrator,
} from '../signer/remote-support.ts';
import type { RemoteSignerWorld } from '../signer/remote-support.ts';

const USD = 1_000_000n;
// At 2,000 USD/ETH one cent is 5e12 wei. A 512×512 image (262,144 pixels) at 19,073,487 wei
// per pixel is ≈ 1 cent; a payment for 5e9 pixels at 1,000 wei is 1 cent (3 tickets of 2e12
// wei face value: the signer's largest ticket EV is 3e12 wei).
const PRICE_PER_PIXEL = 19_073_487n;
const PAYMENT_PIXELS = 5_000_000_000;
const BALANCE_USD_MICROS = 200_000n; // 20 cents
// Requests per replica per wave: this many of each kind.
const PER_KIND = 3;

let world: RemoteSignerWorld;
let gateway: FakeGateway;
let second: TestApp;

beforeAll(async () => {
  gateway = await startFakeGateway();
  const env = {
    GATEWAY_URL: gateway.url,
    GATEWAY_PRICES: JSON.stringify({
      'text-to-image': { price_per_unit: PRICE_PER_PIXEL.toString(), pixels_per_unit: '1' },
    }),
    BILLING_ETH_USD_RATE: '2000',
    BILLING_AUTO_CLOSE: 'false',
    BILLING_SPEND_REFRESH_SECONDS: '3600',
    BILLING_PREPAID_INTERVAL_SECONDS: '3600',
  };
  world = await startRemoteSignerWorld({ env });
  second = await startReplica(world, { env });
});
afterAll(async () => {
  await second?.close();
  await world?.close();
  await gateway?.close();
});

const image = { prompt: 'a lighthouse', model_id: 'sdxl', width: 512, height: 512 };

describe('the prepaid gate under front-door and signer load on two replicas', () => {
  it('overshoots the balance by at most one wave of every replica', async () => {
    const replicas = [world.t, second];
    const accountId = world.key.accountId;
    const admin = (await adminKey(world.t)).secret;
    const mode = await call(world.t, 'PUT', `/v1/accounts/${accountId}/billing-mode`, {
      headers: bearer(admin),
      body: { mode: 'prepaid' },
    });
    expect(mode.status).toBe(200);
    await world.t.app.billing.service.addLedgerEntry(
      { actor: 'test', requestId: null },
      { accountId, kind: 'grant', amountUsdMicros: BALANCE_USD_MICROS, reference: 'overshoot' },
    );
    const gatewayKey = (await issueKey(world.t, accountId, { scopes: ['gateway'] })).secret;
    const orch = testOrchestrator(world);
    const info = await orch.info({ pricePerUnit: 1000n, faceValue: 2_000_000_000_000n });
    await Promise.all(replicas.map((r) => r.app.billing.spendGate.reload()));

    const countEvents = async () =>
      Number(
        (
          await world.handle.db
            .selectFrom('usage_events')
            .select((eb) => eb.fn.countAll<string>().as('n'))
            .where('account_id', '=', accountId)
            .executeTakeFirstOrThrow()
        ).n,
      );
    let session = 0;
    let admitted = 0;
    let refused = 0;
    for (let wave = 0; wave < 50; wave++) {
      const statuses = await Promise.all(
        replicas.flatMap((r) => [
          ...Array.from({ length: PER_KIND }, async () => {
            const res = await call(r, 'POST', '/text-to-image', {
              headers: bearer(gatewayKey),
              body: image,
            });
            return res.status === 200 || res.status === 402
              ? res.status
              : `${res.status} ${JSON.stringify(res.body)}`;
          }),
          ...Array.from({ length: PER_KIND }, async () => {
            const res = await call(r, 'POST', '/generate-live-payment', {
              headers: bearer(world.key.secret),
              body: paymentBody(info, {
                ManifestID: `overshoot-${session++}`,
                inPixels: PAYMENT_PIXELS,
              }),
            });
            return res.status === 200 || res.status === 402
              ? res.status
              : `${res.status} ${JSON.stringify(res.body)}`;
          }),
        ]),
      );
      for (const status of statuses)
        if (status !== 200 && status !== 402) throw new Error(String(status));
      const now = statuses.filter((s) => s === 200).length;
      admitted += now;
      refused += statuses.length - now;
      if (now === 0) break;
      // The recorder flushes within 100 ms: wait for every admitted request's event, then
      // each replica's view refreshes (as its timer would once per refresh interval).
      await eventually(async () => (await countEvents()) === admitted, {
        timeoutMs: 30_000,
        intervalMs: 50,
        what: 'the admitted requests metered',
      });
      await Promise.all(replicas.map((r) => r.app.billing.spendGate.refresh()));
    }
    expect(refused).toBeGreaterThan(0);

    const fees = await world.handle.db
      .selectFrom('usage_events')
      .select(['source', 'fee_wei'])
      .where('account_id', '=', accountId)
      .execute();
    expect(fees).toHaveLength(admitted);
    expect(new Set(fees.map((f) => f.source)).size).toBe(2); // front door and signer both
    const rate = 2000n * USD; // micro-dollars per ETH
    const usd = (wei: bigint) => (wei * rate + 10n ** 18n - 1n) / 10n ** 18n;
    const spentUsd = usd(fees.reduce((sum, f) => sum + BigInt(f.fee_wei), 0n));
    const largest = fees.reduce((m, f) => (BigInt(f.fee_wei) > m ? BigInt(f.fee_wei) : m), 0n);
    const overshoot = spentUsd - BALANCE_USD_MICROS;
    const bound = BigInt(replicas.length * 2 * PER_KIND) * usd(largest);
    console.log(
      `prepaid overshoot, 2 replicas, ${2 * PER_KIND} requests per replica per refresh ` +
        `(front door + signer): balance ${BALANCE_USD_MICROS} µUSD, admitted ${admitted}, refused ${refused}, ` +
        `spent ${spentUsd} µUSD, overshoot ${overshoot} µUSD = ` +
        `${Number((overshoot * 1000n) / bound) / 10} % of the documented bound ${bound} µUSD; ` +
        `load average ${os
          .loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}`,
    );
    expect(overshoot).toBeGreaterThanOrEqual(0n);
    expect(overshoot).toBeLessThanOrEqual(bound);
  });
});
