import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineRoute } from '../../src/platform/http.ts';
import { shippedMigrations } from '../../src/platform/migrations.ts';
import { json } from '../support/http.ts';
import { startTestApp } from '../support/app.ts';
import { createTestDatabase, onRealPostgres } from '../support/db.ts';
import { freePort, serve, waitReady } from '../support/process.ts';
import { eventually } from '../support/eventually.ts';

describe('graceful shutdown (in process)', () => {
  it('finishes in-flight requests, refuses new connections and fails readiness first', async () => {
    let release = () => {};
    let entered = () => {};
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const t = await startTestApp({
      beforeStart(app) {
        defineRoute(
          app.router,
          {
            method: 'get',
            path: '/test/slow',
            response: z.object({ done: z.boolean() }),
            access: { kinds: 'anyone' },
          },
          async () => {
            const released = new Promise<void>((resolve) => (release = resolve));
            entered();
            await released;
            return { done: true };
          },
        );
      },
    });
    const inFlight = fetch(`${t.url}/test/slow`);
    await inside; // the request is now inside the handler (a fixed sleep raced a busy machine)

    t.app.lifecycle.shuttingDown = true;
    const ready = await fetch(`${t.url}/readyz`);
    expect(ready.status).toBe(503);
    expect((await json(ready)).message).toBe('shutting down');

    const closed = t.server.close();
    // The listener closes asynchronously: new connections are refused once it has.
    await eventually(() =>
      fetch(`${t.url}/healthz`).then(
        () => false,
        () => true,
      ),
    );

    release();
    const response = await inFlight;
    expect(response.status).toBe(200);
    expect(response.headers.get('connection')).toBe('close');
    expect(await json(response)).toEqual({ done: true });
    await closed;
    await t.close();
  });
});

describe("tollhouse serve (child processes on the run's database)", () => {
  it.runIf(onRealPostgres())(
    'two replicas started at the same moment both come up, and the schema is migrated once',
    async () => {
      const database = await createTestDatabase({ empty: true });
      const settings = {
        DATABASE_URL: database.url as string,
        TOLLHOUSE_SECRET: randomBytes(32).toString('hex'),
      };
      const [a, b] = [serve(await freePort(), settings), serve(await freePort(), settings)];
      try {
        await Promise.all([waitReady(a), waitReady(b)]);
        const handle = await database.open();
        const rows = await sql<{ name: string }>`select name from kysely_migration`.execute(
          handle.db,
        );
        expect(rows.rows.map((r) => r.name).sort()).toEqual(await shippedMigrations());
        const migratedBy = [a, b].filter((p) => p.output().includes('"msg":"database migrated"'));
        expect(migratedBy).toHaveLength(1);
        a.child.kill('SIGTERM');
        b.child.kill('SIGTERM');
        expect(await a.exited).toEqual({ code: 0, signal: null });
        expect(await b.exited).toEqual({ code: 0, signal: null });
      } finally {
        a.child.kill('SIGKILL');
        b.child.kill('SIGKILL');
        await database.destroy();
      }
    },
  );
});
