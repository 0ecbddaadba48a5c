// kill -9 in the middle of a delivery loses nothing: the replica that was sending dies with the
// request in flight (the receiver holds it open), its lease runs out, and the next replica sends
// the event again — same webhook-id, signed, and before the events behind it.
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import type { App } from '../../src/app.ts';
import { createLogger } from '../../src/platform/log.ts';
import { TEST_SECRET, testConfig } from '../support/app.ts';
import { movingClock } from '../support/clock.ts';
import { createTestDatabase } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';
import { eventually } from '../support/eventually.ts';
import { newAccount } from '../support/fixtures.ts';
import { freePort, serve, waitReady } from '../support/process.ts';
import { startReceiver } from './receiver.ts';

const log = createLogger({ level: 'silent' });
const env = {
  WEBHOOK_ALLOW_PRIVATE_ADDRESSES: 'true',
  WEBHOOK_TIMEOUT_SECONDS: '5',
  WEBHOOK_POLL_SECONDS: '1',
};
let database: TestDatabase | undefined;
afterAll(async () => database?.destroy());

async function appOn(
  storage: Awaited<ReturnType<TestDatabase['forChildren']>>,
  clock = movingClock(),
  start = true,
) {
  const handle = await storage.open();
  const app: App = await createApp({
    clock,
    config: testConfig({ PORT: '1', ...env }),
    log,
    database: handle,
    start,
  });
  return {
    app,
    async close() {
      await app.close();
      await handle.close();
    },
  };
}

describe('webhook delivery across a kill -9', () => {
  it('sends the event again after the sending replica is killed mid-request', async () => {
    database = await createTestDatabase();
    const storage = await database.forChildren();
    const receiver = await startReceiver();
    receiver.hold = true;
    // Set up in this process: an account, its endpoint, two events; then hand the storage over.
    const setup = await appOn(storage, movingClock(), false);
    const accountId = await newAccount(setup);
    const caller = { actor: 'test', accountId, operator: false, requestId: null };
    const { endpoint, secret } = await setup.app.notifications.service.create(caller, {
      url: receiver.url,
    });
    await setup.app.database.db.transaction().execute((trx) =>
      setup.app.notifications.events.publish(trx, [
        { type: 'balance.low', accountId, key: `k1:${accountId}`, data: { n: 1 } },
        { type: 'balance.depleted', accountId, key: `k2:${accountId}`, data: { n: 2 } },
      ]),
    );
    // Not started (no sender ran): the child is the first to send.
    await setup.close();

    const proc = serve(await freePort(), {
      ...storage.env,
      ...env,
      TOLLHOUSE_SECRET: TEST_SECRET,
      LOG_LEVEL: 'warn',
    });
    try {
      await waitReady(proc);
      await eventually(() => receiver.held() === 1, {
        what: 'the child to send the first event',
        timeoutMs: 30_000,
      }).catch((error: Error) => {
        throw new Error(`${error.message}\n${proc.output()}`);
      });
      proc.child.kill('SIGKILL');
      await proc.exited;
    } finally {
      if (proc.child.exitCode === null && proc.child.signalCode === null)
        proc.child.kill('SIGKILL');
    }
    receiver.hold = false;
    receiver.release(); // the dead replica never reads this answer

    // The next replica: its clock past the dead one's lease (timeout + 30 s).
    const clock = movingClock();
    const next = await appOn(storage, clock);
    try {
      await next.app.notifications.deliverDue();
      expect(receiver.received).toHaveLength(1);
      clock.advance(36_000);
      await next.app.notifications.deliverDue();
      await eventually(() => receiver.received.length === 3);
      const [first, again, second] = receiver.received;
      expect(again!.id).toBe(first!.id);
      expect(first!.json.data).toEqual({ n: 1 });
      expect(second!.json.data).toEqual({ n: 2 });
      receiver.verifyAll(secret);
      const log = await next.app.notifications.service.deliveries(caller, endpoint.id, 10, null);
      expect(log.map((d) => [d.event_type, d.status, d.attempts])).toEqual([
        ['balance.depleted', 'succeeded', 1],
        ['balance.low', 'succeeded', 2],
      ]);
    } finally {
      await next.close();
      await receiver.close();
    }
  }, 120_000);
});
