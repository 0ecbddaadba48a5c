import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../../src/database.ts';
import { createOutbox } from '../../src/notifications/outbox.ts';
import type { OutboundEvent } from '../../src/platform/events.ts';
import { fixedClock } from '../support/clock.ts';
import { createTestDatabase } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';

let database: TestDatabase;
let handle: DatabaseHandle;
beforeAll(async () => {
  database = await createTestDatabase();
  handle = await database.open();
});
afterAll(async () => {
  await handle.close();
  await database.destroy();
});

const clock = fixedClock('2027-03-01T00:00:00Z');
const outbox = createOutbox({ clock });
const event = (key: string, amount = '10'): OutboundEvent => ({
  type: 'balance.low',
  accountId: 'acct_a',
  key,
  data: { balance_wei: amount },
});

describe('outbox', () => {
  it('stores one event per key, however often it is published', async () => {
    await outbox.publish(handle.db, [event('balance.low:acct_a:1')]);
    await outbox.publish(handle.db, [
      event('balance.low:acct_a:1', '9'),
      event('balance.low:acct_a:2'),
    ]);
    const rows = await handle.db
      .selectFrom('outbound_events')
      .selectAll()
      .where('key', 'like', 'balance.low:acct_a:%')
      .orderBy('seq')
      .execute();
    expect(rows.map((r) => [r.key, r.data, r.occurred_at.toISOString()])).toEqual([
      ['balance.low:acct_a:1', { balance_wei: '10' }, '2027-03-01T00:00:00.000Z'],
      ['balance.low:acct_a:2', { balance_wei: '10' }, '2027-03-01T00:00:00.000Z'],
    ]);
    expect(BigInt(rows[1]!.seq)).toBeGreaterThan(BigInt(rows[0]!.seq));
  });

  it('keeps nothing of a transaction that rolls back', async () => {
    await expect(
      handle.db.transaction().execute(async (trx) => {
        await outbox.publish(trx, [event('rolled-back')]);
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    const rows = await handle.db
      .selectFrom('outbound_events')
      .select('id')
      .where('key', '=', 'rolled-back')
      .execute();
    expect(rows).toEqual([]);
  });
});
