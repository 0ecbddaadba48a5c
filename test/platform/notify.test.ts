import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, onRealPostgres } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';
import { eventually } from '../support/eventually.ts';

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.destroy();
});

/** Waits (shared helper) until `count` notifications have arrived. */
function nextPayload(received: Array<string | null>, count: number) {
  return eventually(() => received.length >= count, {
    what: `${count} notifications (${received.length} so far)`,
  });
}

describe('LISTEN/NOTIFY', () => {
  it('delivers a NOTIFY to a listener, and stops after unlisten', async () => {
    const handle = await database.open();
    const received: Array<string | null> = [];
    const stop = await handle.listen('tollhouse_test', (payload) => received.push(payload));
    await sql`select pg_notify('tollhouse_test', 'key_1')`.execute(handle.db);
    await nextPayload(received, 1);
    expect(received).toEqual(['key_1']);
    // A second channel on the same LISTEN connection marks the end: notifications reach a
    // connection in commit order, so once the marker is in, key_2 would have been too.
    const marks: Array<string | null> = [];
    const stopMarks = await handle.listen('tollhouse_test_mark', (payload) => marks.push(payload));
    await stop();
    await sql`select pg_notify('tollhouse_test', 'key_2')`.execute(handle.db);
    await sql`select pg_notify('tollhouse_test_mark', 'after key_2')`.execute(handle.db);
    await nextPayload(marks, 1);
    await stopMarks();
    expect(received).toEqual(['key_1']);
  });

  it('refuses a channel name that is not a plain identifier', async () => {
    const handle = await database.open();
    await expect(handle.listen('x; drop table audit_log', () => {})).rejects.toThrow(
      /invalid LISTEN channel/,
    );
  });

  it.runIf(onRealPostgres())(
    'reaches every replica: a NOTIFY from one pool arrives at another',
    async () => {
      const [a, b] = [await database.open(), await database.open()];
      const received: Array<string | null> = [];
      await b.listen('tollhouse_replicas', (payload) => received.push(payload));
      await sql`select pg_notify('tollhouse_replicas', 'revoked:key_9')`.execute(a.db);
      await nextPayload(received, 1);
      expect(received).toEqual(['revoked:key_9']);
    },
  );

  it.runIf(onRealPostgres())(
    'tells listeners to resynchronise after the connection drops',
    async () => {
      const handle = await database.open();
      const received: Array<string | null> = [];
      await handle.listen('tollhouse_resync', (payload) => received.push(payload));
      // Kill the LISTEN connection from the server side, as a failover or restart would.
      await sql`select pg_terminate_backend(pid) from pg_stat_activity
              where application_name = 'tollhouse-listen' and datname = current_database()`.execute(
        handle.db,
      );
      await nextPayload(received, 1);
      expect(received).toEqual([null]);
      await sql`select pg_notify('tollhouse_resync', 'after')`.execute(handle.db);
      await nextPayload(received, 2);
      expect(received).toEqual([null, 'after']);
    },
  );
});
