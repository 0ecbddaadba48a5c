// Billing's spend gate in front of the real front door: an account at its cap is refused with
// 402 before anything reaches go-livepeer, and is served again once the cap allows it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { adminKey, bearer, call, issueKey } from '../support/credentials.ts';
import { startFakeGateway } from '../support/fake-gateway.ts';
import type { FakeGateway } from '../support/fake-gateway.ts';
import { newAccount } from '../support/fixtures.ts';

let t: TestApp;
let fake: FakeGateway;
let admin: string;

beforeAll(async () => {
  fake = await startFakeGateway();
  t = await startTestApp({
    env: { GATEWAY_URL: fake.url, BILLING_ETH_USD_RATE: '2000', BILLING_AUTO_CLOSE: 'false' },
  });
  admin = (await adminKey(t)).secret;
});
afterAll(async () => {
  await t?.close();
  await fake?.close();
});

const image = { prompt: 'a lighthouse', model_id: 'sdxl', width: 512, height: 512 };

describe('spend caps at the front door', () => {
  it('answers 402 before forwarding once the month-to-date spend reaches the cap', async () => {
    const account = await newAccount(t);
    const key = (await issueKey(t, account, { scopes: ['gateway'] })).secret;
    const setCap = (cap: string) =>
      call(t, 'PUT', `/v1/accounts/${account}/spend-caps`, {
        headers: bearer(admin),
        body: { monthly_cap_wei: cap },
      });
    expect((await setCap('1000')).status).toBe(200);
    await t.app.metering.service.record([
      {
        source: 'test',
        eventId: `spent-${account}`,
        occurredAt: t.clock(),
        accountId: account,
        appId: null,
        keyId: null,
        clientId: null,
        endUserId: null,
        pipeline: 'text-to-image',
        modelId: 'sdxl',
        unit: 'pixels',
        quantity: 1n,
        feeWei: 1000n,
        status: 200,
        latencyMs: 1,
        attributes: {},
      },
    ]);
    await t.app.billing.spendGate.reload(); // the cap and the spend, without waiting for NOTIFY

    const before = fake.received.length;
    const refused = await call(t, 'POST', '/text-to-image', { headers: bearer(key), body: image });
    expect(refused.status).toBe(402);
    expect(refused.body.error).toBe('PaymentRequired');
    expect(typeof refused.body.message).toBe('string');
    expect(fake.received.length).toBe(before); // nothing was forwarded

    // Raising the cap lets the same key through again (the gate hears the change by NOTIFY).
    expect((await setCap('1000000000')).status).toBe(200);
    await t.app.billing.spendGate.reload();
    const served = await call(t, 'POST', '/text-to-image', { headers: bearer(key), body: image });
    expect(served.status).toBe(200);
    expect(fake.received.length).toBe(before + 1);
  });
});
