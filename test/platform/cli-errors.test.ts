// The command line's expected failures, run as an operator runs them (child processes on an
// embedded database): one line on stderr and a non-zero status, a stack trace only with
// LOG_LEVEL=debug; `serve` on a port in use exits instead of hanging.
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, runCli } from '../support/process.ts';

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-cli-errors-'));
const SECRET = 'a'.repeat(64);
const OTHER_SECRET = 'b'.repeat(64);
const base = { TOLLHOUSE_DATA_DIR: dataDir, TOLLHOUSE_SECRET: SECRET, LOG_LEVEL: 'error' };
const STACK_LINE = /^\s+at /m;

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

describe('expected errors are one line', () => {
  it('billing close without an ETH/USD rate: one line, exit 1; the stack only at debug', async () => {
    const result = await runCli(['billing', 'close', '--month', '2026-01'], base);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      'tollhouse: No ETH/USD rate is configured: set BILLING_ETH_USD_RATE, or BILLING_ETH_USD_FEED with ETH_RPC_URL',
    ]);
    expect(result.stdout).toBe('');

    const debug = await runCli(['billing', 'close', '--month', '2026-01'], {
      ...base,
      LOG_LEVEL: 'debug',
    });
    expect(debug.code).toBe(1);
    expect(debug.stderr).toContain('tollhouse: No ETH/USD rate is configured');
    expect(debug.stderr).toMatch(STACK_LINE);
    expect(debug.stderr).toContain('RateUnavailable');
    // Two cold starts of the CLI on an embedded database.
  });

  it('an unknown account is one line, exit 1', async () => {
    const result = await runCli(['accounts', 'show', 'acct_doesnotexist'], base);
    expect(result.code).not.toBe(0);
    expect(lines(result.stderr)).toHaveLength(1);
    expect(result.stderr).toMatch(/^tollhouse: /);
    expect(result.stderr).not.toMatch(STACK_LINE);
  });

  it('serve with another TOLLHOUSE_SECRET than the data was sealed with: one line, exit 1', async () => {
    // The data folder's signing keys were sealed with SECRET by the commands above.
    const result = await runCli(['serve'], {
      ...base,
      TOLLHOUSE_SECRET: OTHER_SECRET,
      HOST: '127.0.0.1',
      PORT: String(await freePort()),
    });
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      'tollhouse: cannot decrypt the OIDC signing keys: TOLLHOUSE_SECRET is not the one they were sealed with',
    ]);
  });
});

describe('serve on a port in use', () => {
  let holder: Server;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    holder = createServer();
    await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => holder.close(() => resolve()));
  });

  it('says the port is in use in one line and exits 1 instead of hanging', async () => {
    // runCli resolves only when the process exits: a hang fails this test by its timeout.
    const result = await runCli(['serve'], { ...base, HOST: '127.0.0.1', PORT: String(port) });
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      `tollhouse: the port is already in use: listen EADDRINUSE: address already in use 127.0.0.1:${port}; set PORT`,
    ]);
  });
});
