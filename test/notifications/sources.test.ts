// The events other capabilities publish, each once per crossing: a statement when its month
// closes (in the close's transaction), an API key when it reaches 90 days (once per key and
// due day, however many scans or replicas see it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_CALLER } from '../../src/keys/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { fixedClock } from '../support/clock.ts';
import { issueKey } from '../support/credentials.ts';
import { newAccount } from '../support/fixtures.ts';

let t: TestApp;
const clock = fixedClock('2027-02-15T10:00:00Z');
beforeAll(async () => {
  t = await startTestApp({
    clock,
    env: { BILLING_ETH_USD_RATE: '3000', BILLING_AUTO_CLOSE: 'false' },
  });
});
afterAll(async () => t?.close());

const eventsOf = (type: string) =>
  t.app.database.db
    .selectFrom('outbound_events')
    .selectAll()
    .where('type', '=', type)
    .orderBy('seq')
    .execute();

describe('event sources', () => {
  it('publishes statement.closed once per statement, with the close', async () => {
    const accountId = await newAccount(t);
    await t.app.metering.service.record([
      {
        source: 'urn:test:sources',
        eventId: 'e1',
        occurredAt: new Date('2027-01-20T00:00:00Z'),
        accountId,
        appId: null,
        keyId: null,
        clientId: null,
        endUserId: null,
        pipeline: 'text-to-image',
        modelId: null,
        unit: 'requests',
        quantity: 1n,
        feeWei: 1_000_000_000_000n,
        status: 200,
        latencyMs: 1,
        attributes: {},
      },
    ]);
    await t.app.billing.service.closeMonth('2027-01');
    await t.app.billing.service.closeMonth('2027-01');
    const [statement] = await t.app.billing.service.statements({ accountId }, 1);
    const events = await eventsOf('statement.closed');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      account_id: accountId,
      key: `statement.closed:${statement!.id}`,
      data: { statement_id: statement!.id, month: '2027-01', fee_wei: '1000000000000' },
    });
  });

  it('publishes key.rotation_due once per key when it reaches 90 days', async () => {
    const accountId = await newAccount(t);
    const key = await issueKey(t, accountId, { name: 'old one' });
    const revoked = await issueKey(t, accountId, { name: 'gone' });
    await t.app.keys.service.revoke(CLI_CALLER, revoked.key.id);
    await t.app.keys.announceRotationDue();
    expect(await eventsOf('key.rotation_due')).toEqual([]);
    clock.advance(90 * 24 * 3_600_000 + 60_000);
    await t.app.keys.announceRotationDue();
    clock.advance(3_600_000);
    await t.app.keys.announceRotationDue();
    const events = await eventsOf('key.rotation_due');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      account_id: accountId,
      data: { key_id: key.key.id, name: 'old one' },
    });
    // Past the scan's look-back (a week), nothing new is announced for it either.
    clock.advance(8 * 24 * 3_600_000);
    await t.app.keys.announceRotationDue();
    expect(await eventsOf('key.rotation_due')).toHaveLength(1);
  });
});
