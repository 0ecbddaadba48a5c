// `tollhouse serve` and the command line as child processes on storage of their own: the
// embedded PGlite folder `npm start` uses with no settings, an unreachable PostgreSQL, and the
// help and usage errors. None of it uses the run's test database, so CI runs this file once;
// the serve tests on the run's database (replicas migrating it together) are in serve.test.ts.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, runCli, serve, waitReady } from '../support/process.ts';

const SHUTDOWN_LIMIT_MS = 10_000;

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
