// Outbound webhooks end to end: endpoints made through the API, events published to the outbox,
// delivered by the real sender over loopback HTTP to a real receiver that verifies every
// signature with the `standardwebhooks` library. Time is the app's fixed clock, moved past each
// retry instead of waited for.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import type { App } from '../../src/app.ts';
import type { OutboundEvent } from '../../src/platform/events.ts';
import { createLogger } from '../../src/platform/log.ts';
import { RETRY_SCHEDULE_MS } from '../../src/notifications/index.ts';
import { startTestApp, testConfig } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { fixedClock } from '../support/clock.ts';
import { bearer, call, adminKey, issueKey } from '../support/credentials.ts';
import { eventually } from '../support/eventually.ts';
import { newAccount } from '../support/fixtures.ts';
import { startSmtp } from '../identity/smtp.ts';
import type { TestSmtp } from '../identity/smtp.ts';
import { startReceiver } from './receiver.ts';
import type { Receiver } from './receiver.ts';

let t: TestApp;
let smtp: TestSmtp;
let receiver: Receiver;
let operator: string;
const clock = fixedClock('2027-05-10T12:00:00Z');

beforeAll(async () => {
  smtp = await startSmtp();
  t = await startTestApp({
    clock,
    env: {
      WEBHOOK_ALLOW_PRIVATE_ADDRESSES: 'true',
      WEBHOOK_DISABLE_AFTER_FAILURES: '4',
      WEBHOOK_DISABLE_AFTER_HOURS: '1',
      WEBHOOK_TIMEOUT_SECONDS: '5',
      SMTP_URL: smtp.url,
      MAIL_FROM: 'Tollhouse <alerts@example.com>',
      ALERT_OPERATOR_EMAIL: 'ops@example.com',
    },
  });
  operator = (await adminKey(t)).secret;
});
afterAll(async () => {
  await t?.close();
  await smtp?.close();
});
beforeEach(async () => {
  await receiver?.close();
  receiver = await startReceiver();
});

let counter = 0;
async function customer(options: { verified?: boolean } = {}) {
  const email = `c${++counter}-${Date.now()}@example.com`;
  const accountId = await newAccount(t, email);
  if (options.verified) {
    await t.app.database.db
      .updateTable('accounts')
      .set({ email_verified: true })
      .where('id', '=', accountId)
      .execute();
  }
  const key = await issueKey(t, accountId, { scopes: ['gateway'] });
  return { accountId, email, headers: bearer(key.secret) };
}

async function endpointFor(headers: Record<string, string>, body: Record<string, unknown> = {}) {
  const created = await call(t, 'POST', '/v1/webhooks/endpoints', {
    headers,
    body: { url: receiver.url, ...body },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body as { id: string; secret: string; account_id: string | null };
}

function event(accountId: string | null, key: string, type: OutboundEvent['type'] = 'balance.low') {
  return { type, accountId, key, data: { balance_wei: '123', key } } satisfies OutboundEvent;
}

async function publish(...events: OutboundEvent[]) {
  await t.app.database.db
    .transaction()
    .execute((trx) => t.app.notifications.events.publish(trx, events));
}

/** Moves the app's clock past retry `n` (1-based) with its jitter, then runs the sender. */
async function pastRetry(n: number) {
  // The attempt before must be recorded first (its retry is timed from then).
  await t.app.notifications.deliverDue();
  clock.advance(Math.ceil(RETRY_SCHEDULE_MS[n - 1]! * 1.1) + 1);
  await t.app.notifications.deliverDue();
}

describe('webhook delivery', () => {
  it('delivers a published event once, signed per Standard Webhooks, and logs it', async () => {
    const c = await customer();
    const endpoint = await endpointFor(c.headers);
    expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    await publish(event(c.accountId, `low:${c.accountId}:1`));
    // Woken by NOTIFY at commit: no call to deliverDue.
    await eventually(() => receiver.received.length === 1);
    receiver.verifyAll(endpoint.secret);
    const [got] = receiver.received;
    expect(got!.json).toMatchObject({
      type: 'balance.low',
      account_id: c.accountId,
      data: { balance_wei: '123' },
    });
    expect(got!.id).toBe(got!.json.id);
    expect(got!.json.id).toMatch(/^evt_/);
    const log = await eventually(async () => {
      const r = await call(t, 'GET', `/v1/webhooks/endpoints/${endpoint.id}/deliveries`, {
        headers: c.headers,
      });
      return r.body.deliveries[0]?.status === 'succeeded' && r.body;
    });
    expect(log.deliveries).toHaveLength(1);
    expect(log.deliveries[0]).toMatchObject({
      event_id: got!.id,
      event_type: 'balance.low',
      attempts: 1,
      response_status: 200,
      next_attempt_at: null,
    });
    expect(log.deliveries[0].latency_ms).toBeGreaterThanOrEqual(0);
    // Published again (the same crossing seen by another request): not delivered again.
    await publish(event(c.accountId, `low:${c.accountId}:1`));
    await t.app.notifications.deliverDue();
    expect(receiver.received).toHaveLength(1);
  });

  it('retries a receiver that fails 3 times on the schedule, then sends the next event, in order', async () => {
    const c = await customer();
    const endpoint = await endpointFor(c.headers);
    receiver.script = [500, 503, 502];
    await publish(event(c.accountId, `a:${c.accountId}`), event(c.accountId, `b:${c.accountId}`));
    await eventually(() => receiver.received.length === 1);
    await t.app.notifications.deliverDue();
    // Not yet due: the first retry waits about 5 s, and B waits behind A.
    expect(receiver.received).toHaveLength(1);
    await pastRetry(1);
    expect(receiver.received).toHaveLength(2);
    await pastRetry(2);
    expect(receiver.received).toHaveLength(3);
    await pastRetry(3);
    await eventually(() => receiver.received.length === 5);
    const [a, , , , b] = receiver.received;
    expect(receiver.received.map((r) => r.id)).toEqual([a!.id, a!.id, a!.id, a!.id, b!.id]);
    expect(a!.json.data).toMatchObject({ key: `a:${c.accountId}` });
    expect(b!.json.data).toMatchObject({ key: `b:${c.accountId}` });
    receiver.verifyAll(endpoint.secret);
    await t.app.notifications.deliverDue();
    expect(receiver.received).toHaveLength(5);
    const log = await call(t, 'GET', `/v1/webhooks/endpoints/${endpoint.id}/deliveries`, {
      headers: c.headers,
    });
    expect(
      log.body.deliveries.map((d: { status: string; attempts: number }) => [d.status, d.attempts]),
    ).toEqual([
      ['succeeded', 1],
      ['succeeded', 4],
    ]);
    const shown = await call(t, 'GET', `/v1/webhooks/endpoints/${endpoint.id}`, {
      headers: c.headers,
    });
    expect(shown.body).toMatchObject({
      enabled: true,
      consecutive_failures: 0,
      failing_since: null,
    });
  });

  it('disables an endpoint after repeated failure, tells its owner, and resumes when enabled', async () => {
    const c = await customer({ verified: true });
    const endpoint = await endpointFor(c.headers);
    receiver.otherwise = 500;
    await publish(event(c.accountId, `d:${c.accountId}`));
    await eventually(() => receiver.received.length === 1);
    for (let n = 1; n <= 4; n++) await pastRetry(n);
    // 5 failures, the last more than an hour after the first: disabled.
    expect(receiver.received).toHaveLength(5);
    const shown = await call(t, 'GET', `/v1/webhooks/endpoints/${endpoint.id}`, {
      headers: c.headers,
    });
    expect(shown.body).toMatchObject({ enabled: false, consecutive_failures: 5 });
    expect(shown.body.disabled_reason).toMatch(/5 consecutive failed deliveries/);
    const mail = await smtp.next(c.email, /webhook endpoint was disabled/);
    expect(mail.text).toContain(endpoint.id);
    // The alert for the event itself went by e-mail too (the account's address is confirmed).
    await smtp.next(c.email, /prepaid balance is low/);
    // Disabled: nothing is sent, however late it gets.
    await pastRetry(5);
    expect(receiver.received).toHaveLength(5);
    receiver.otherwise = 200;
    const enabled = await call(t, 'POST', `/v1/webhooks/endpoints/${endpoint.id}/enable`, {
      headers: c.headers,
    });
    expect(enabled.body).toMatchObject({ enabled: true, disabled_reason: null });
    await eventually(() => receiver.received.length === 6);
    expect(new Set(receiver.received.map((r) => r.id)).size).toBe(1);
  });

  it('gives up after the last retry (about a day) and marks the delivery failed', async () => {
    const c = await customer();
    const endpoint = await endpointFor(c.headers);
    receiver.otherwise = 500;
    await publish(event(c.accountId, `g:${c.accountId}`));
    await eventually(() => receiver.received.length === 1);
    for (let n = 1; n <= RETRY_SCHEDULE_MS.length; n++) {
      // Failures over a day would disable the endpoint (the previous test): this one is about
      // the delivery giving up, so the endpoint's failure count is kept below the limit.
      await t.app.database.db
        .updateTable('webhook_endpoints')
        .set({ consecutive_failures: 0 })
        .where('id', '=', endpoint.id)
        .execute();
      await pastRetry(n);
    }
    await t.app.notifications.deliverDue();
    expect(receiver.received).toHaveLength(RETRY_SCHEDULE_MS.length + 1);
    const log = await call(t, 'GET', `/v1/webhooks/endpoints/${endpoint.id}/deliveries`, {
      headers: c.headers,
    });
    expect(log.body.deliveries[0]).toMatchObject({
      status: 'failed',
      attempts: 8,
      response_status: 500,
      error: 'HTTP 500',
      next_attempt_at: null,
    });
    const total = RETRY_SCHEDULE_MS.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(24 * 3_600_000);
    expect(total).toBeLessThan(30 * 3_600_000);
  });

  it('sends only the types an endpoint asked for, and only its own account’s', async () => {
    const c = await customer();
    const other = await customer();
    const endpoint = await endpointFor(c.headers, { event_types: ['statement.closed'] });
    await publish(
      event(c.accountId, `t1:${c.accountId}`, 'balance.low'),
      event(other.accountId, `t2:${other.accountId}`, 'statement.closed'),
      event(null, `t3:${c.accountId}`, 'signer.deposit_low'),
      event(c.accountId, `t4:${c.accountId}`, 'statement.closed'),
    );
    await eventually(() => receiver.received.length === 1);
    await t.app.notifications.deliverDue();
    expect(receiver.received.map((r) => r.json.data)).toEqual([
      { balance_wei: '123', key: `t4:${c.accountId}` },
    ]);
    receiver.verifyAll(endpoint.secret);
  });

  it('gives operators deployment events, and every account’s with all_accounts', async () => {
    const c = await customer();
    const deployment = await endpointFor(bearer(operator));
    expect(deployment.account_id).toBeNull();
    const everything = await startReceiver('/all');
    try {
      const all = await call(t, 'POST', '/v1/webhooks/endpoints', {
        headers: bearer(operator),
        body: { url: everything.url, all_accounts: true },
      });
      expect(all.status).toBe(201);
      await publish(
        event(null, `dep:${c.accountId}`, 'signer.reserve_low'),
        event(c.accountId, `acc:${c.accountId}`, 'key.rotation_due'),
      );
      await eventually(() => receiver.received.length === 1 && everything.received.length === 2);
      expect(receiver.received[0]!.json.type).toBe('signer.reserve_low');
      expect(everything.received.map((r) => r.json.type)).toEqual([
        'signer.reserve_low',
        'key.rotation_due',
      ]);
      everything.verifyAll(all.body.secret);
      // The operator's alert address got the deployment event by e-mail.
      await smtp.next('ops@example.com', /signer's reserve is low/);
    } finally {
      await everything.close();
    }
  });

  it('sends a test event and resends a delivery on request', async () => {
    const c = await customer();
    const endpoint = await endpointFor(c.headers);
    const test = await call(t, 'POST', `/v1/webhooks/endpoints/${endpoint.id}/test`, {
      headers: c.headers,
    });
    expect(test.status).toBe(202);
    expect(test.body).toMatchObject({ event_type: 'webhook.test', status: 'pending' });
    await eventually(() => receiver.received.length === 1);
    expect(receiver.received[0]!.json).toMatchObject({
      type: 'webhook.test',
      account_id: c.accountId,
      data: { endpoint_id: endpoint.id },
    });
    const resent = await call(
      t,
      'POST',
      `/v1/webhooks/endpoints/${endpoint.id}/deliveries/${test.body.id}/resend`,
      { headers: c.headers },
    );
    expect(resent.status).toBe(202);
    expect(resent.body.id).not.toBe(test.body.id);
    await eventually(() => receiver.received.length === 2);
    expect(receiver.received[1]!.id).toBe(receiver.received[0]!.id);
    receiver.verifyAll(endpoint.secret);
  });

  it('signs with the old and the new secret for a day after a rotation', async () => {
    const c = await customer();
    const endpoint = await endpointFor(c.headers);
    const rotated = await call(t, 'POST', `/v1/webhooks/endpoints/${endpoint.id}/rotate-secret`, {
      headers: c.headers,
    });
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).not.toBe(endpoint.secret);
    await publish(event(c.accountId, `r1:${c.accountId}`));
    await eventually(() => receiver.received.length === 1);
    receiver.verifyAll(endpoint.secret);
    receiver.verifyAll(rotated.body.secret);
    clock.advance(24 * 3_600_000 + 1);
    await publish(event(c.accountId, `r2:${c.accountId}`));
    await eventually(() => receiver.received.length === 2);
    receiver.received.shift();
    receiver.verifyAll(rotated.body.secret);
    expect(() => receiver.verifyAll(endpoint.secret)).toThrow();
  });

  it('lets two replicas deliver each event once per endpoint, in order', async () => {
    const c = await customer();
    await endpointFor(c.headers);
    const second = await startReceiver('/second');
    // A second app on the same database: a replica with its own sender, racing the first.
    const replica: App = await createApp({
      clock,
      config: testConfig({
        PORT: '1',
        WEBHOOK_ALLOW_PRIVATE_ADDRESSES: 'true',
      }),
      log: createLogger({ level: 'silent' }),
      database: t.app.database,
    });
    try {
      await endpointFor(c.headers, { url: second.url });
      const keys = Array.from({ length: 30 }, (_, i) => `rep:${c.accountId}:${i}`);
      for (let i = 0; i < keys.length; i += 3) {
        await publish(...keys.slice(i, i + 3).map((k) => event(c.accountId, k)));
        void replica.notifications.deliverDue();
      }
      await Promise.all([replica.notifications.deliverDue(), t.app.notifications.deliverDue()]);
      await eventually(
        () => receiver.received.length === keys.length && second.received.length === keys.length,
      );
      await Promise.all([replica.notifications.deliverDue(), t.app.notifications.deliverDue()]);
      for (const r of [receiver, second]) {
        expect(r.received.map((x) => (x.json.data as { key: string }).key)).toEqual(keys);
      }
    } finally {
      await replica.close();
      await second.close();
    }
  });
});
