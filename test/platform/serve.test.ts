import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineRoute } from '../../src/platform/http.ts';
import { shippedMigrations } from '../../src/platform/migrations.ts';
import { json } from '../support/http.ts';
import { startTestApp } from '../support/app.ts';
import { createTestDatabase, onRealPostgres } from '../support/db.ts';
import { freePort, runCli, serve, waitReady } from '../support/process.ts';
import { eventually } from '../support/eventually.ts';

const SHUTDOWN_LIMIT_MS = 10_000;

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

describe('tollhouse serve (child process)', () => {
  it('serves on PGlite with no settings but a port, and exits 0 within 10 s of SIGTERM', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-serve-'));
    const proc = serve(await freePort(), { TOLLHOUSE_DATA_DIR: dataDir });
    await waitReady(proc);

    // PGlite is one process: a second serve on the same data folder is refused clearly.
    const second = await runCli(['serve'], {
      TOLLHOUSE_DATA_DIR: dataDir,
      PORT: String(await freePort()),
      LOG_LEVEL: 'error',
    });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/is in use by process \d+/);

    const started = Date.now();
    proc.child.kill('SIGTERM');
    const exit = await proc.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(SHUTDOWN_LIMIT_MS);
    expect(proc.output()).toContain('"msg":"stopped"');

    // The folder is free again and the data survived: the next start applies nothing new.
    const migrate = await runCli(['migrate'], { TOLLHOUSE_DATA_DIR: dataDir, LOG_LEVEL: 'error' });
    expect(migrate.code).toBe(0);
    expect(JSON.parse(migrate.stdout)).toEqual({ applied: [] });
  });

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

  it('explains an unreachable database in one line', async () => {
    const result = await runCli(['migrate'], {
      DATABASE_URL: `postgres://nobody@127.0.0.1:${await freePort()}/none`,
      TOLLHOUSE_SECRET: 's'.repeat(64),
    });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(
      'tollhouse: cannot reach the database (ECONNREFUSED): check DATABASE_URL and that PostgreSQL is running',
    );
  });
});

describe('the command line', () => {
  it('lists every command in --help', async () => {
    const result = await runCli(['--help']);
    expect(result.code).toBe(0);
    for (const command of ['serve', 'migrate', 'help']) {
      expect(result.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    }
  });

  it('rejects an unknown command or option with status 2', async () => {
    const unknown = await runCli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^tollhouse: unknown command "frobnicate"/);
    const option = await runCli(['migrate', '--sideways']);
    expect(option.code).toBe(2);
    expect(option.stderr).toMatch(/^tollhouse migrate: Unknown option '--sideways'/);
  });
});
