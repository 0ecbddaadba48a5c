// The command line as an operator meets it, on an embedded database: in-process (the command
// line's own entry, as src/main.ts runs it), and as child processes where the process is the
// subject (exit statuses, `serve`, the entry point):
// expected failures are one line on stderr and a non-zero status (2 for every malformed
// command line, 1 for refusals), a stack trace only with LOG_LEVEL=debug; one-shot commands
// print no logs unless --verbose; `serve` on a port in use exits instead of hanging; a Node.js
// too old is told so in one line.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeVersionProblem } from '../../bin/node-version.js';
import { runCliInProcess } from '../support/cli.ts';
import { migratedDataDir } from '../support/db.ts';
import { ROOT, childEnv, freePort, runCli } from '../support/process.ts';

const SECRET = 'a'.repeat(64);
const OTHER_SECRET = 'b'.repeat(64);
// An embedded data folder, migrated beforehand: these tests are about messages, not first starts.
let dataDir: string;
let base: Record<string, string>;
beforeAll(async () => {
  dataDir = await migratedDataDir();
  base = { TOLLHOUSE_DATA_DIR: dataDir, TOLLHOUSE_SECRET: SECRET, LOG_LEVEL: 'error' };
});
const STACK_LINE = /^\s+at /m;

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

describe('expected errors are one line', () => {
  it('billing close without an ETH/USD rate: one line, exit 1; the stack only at debug', async () => {
    const result = await runCliInProcess(['billing', 'close', '--month', '2026-01'], base);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      'tollhouse: No ETH/USD rate is configured: set BILLING_ETH_USD_RATE, or BILLING_ETH_USD_FEED with ETH_RPC_URL',
    ]);
    expect(result.stdout).toBe('');

    const debug = await runCliInProcess(['billing', 'close', '--month', '2026-01'], {
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
    const result = await runCliInProcess(['accounts', 'show', 'acct_doesnotexist'], base);
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

describe('exit statuses', () => {
  it('exits 2 for every malformed command line, naming the command and what is wrong', async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /^tollhouse \S+ — /],
      [['frobnicate'], /^tollhouse: unknown command "frobnicate"/],
      [['keys', 'list', '--colour'], /^tollhouse keys: Unknown option '--colour'/],
      [
        ['usage', 'explode'],
        /^tollhouse usage: unknown sub-command "explode"; expected one of show, prune/,
      ],
      [
        ['signer', 'fund', '--deposit', '1e18'],
        /^tollhouse signer: --deposit "1e18": expected an amount in wei/,
      ],
      [
        ['keystore', 'create', '--out', '/tmp/k.json'],
        /^tollhouse keystore: create needs --password-file FILE/,
      ],
      [['migrate', 'now'], /^tollhouse migrate: Unexpected argument 'now'/],
      [['help', 'nope'], /^tollhouse help: no command "nope"/],
    ];
    for (const [args, message] of cases) {
      const result = await runCliInProcess(args, base);
      expect({ args, code: result.code }).toEqual({ args, code: 2 });
      expect(result.stderr, args.join(' ')).toMatch(message);
      expect(result.stderr).not.toMatch(STACK_LINE);
    }
    // The same statuses from the process itself.
    for (const [args, message] of cases.slice(0, 3)) {
      const result = await runCli(args, base);
      expect({ args, code: result.code }).toEqual({ args, code: 2 });
      expect(result.stderr, args.join(' ')).toMatch(message);
      expect(result.stderr).not.toMatch(STACK_LINE);
    }
  });

  it('documents the statuses and --verbose in the help', async () => {
    const help = await runCliInProcess(['help'], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toContain(
      'Exit status: 0 done, 1 refused or failed, 2 wrong usage, 78 invalid configuration.',
    );
    expect(help.stdout).toMatch(/--verbose {2}show the logs of one-shot commands/);
    // Every command group has a summary and its own usage.
    for (const name of ['serve', 'migrate', 'usage', 'keys', 'apps', 'accounts', 'identity']) {
      expect(help.stdout).toMatch(new RegExp(`^  ${name} +\\S`, 'm'));
    }
    for (const name of ['keystore', 'signer', 'plans', 'billing', 'help']) {
      expect(help.stdout).toMatch(new RegExp(`^  ${name} +\\S`, 'm'));
    }
  });
});

describe('hostile arguments', () => {
  it('are quoted, escaped and shortened in messages, never run or echoed raw', async () => {
    const escape = '\u001b[2J\u001b]0;owned\u0007';
    const long = `key_${'x'.repeat(10_000)}`;
    for (const [args, code] of [
      [['keys', 'show', escape], 1],
      [['keys', 'show', long], 1],
      [['billing', 'close', '--month', escape], 2],
      [['usage', 'show', '--by', `day,${escape}`], 2],
      [['accounts', 'show', '$(touch /tmp/tollhouse-pwned)'], 1],
      [['accounts', 'show', escape], 1],
      [['apps', 'show', escape], 1],
    ] as const) {
      const result = await runCliInProcess([...args], base);
      expect({ args: args.join(' ').slice(0, 40), code: result.code }).toEqual({
        args: args.join(' ').slice(0, 40),
        code,
      });
      // No control character reaches the terminal, and a message stays short.
      const control = [...result.stderr].filter((c) => c !== '\n' && (c < ' ' || c === '\u007f'));
      expect(control).toEqual([]);
      expect(result.stderr.length).toBeLessThan(1_000);
      expect(result.stderr).not.toMatch(STACK_LINE);
    }
    expect(existsSync('/tmp/tollhouse-pwned')).toBe(false);
  });
});

describe('one-shot commands are quiet', () => {
  it('print only their result by default, and the logs with --verbose (on stderr)', async () => {
    // No TOLLHOUSE_SECRET and the default LOG_LEVEL (info): the start-up lines an operator of
    // `serve` needs (a generated secret, the signer disabled) are noise for `usage show`.
    const env = { TOLLHOUSE_DATA_DIR: await migratedDataDir() };
    const quiet = await runCliInProcess(['usage', 'show'], env);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe('');
    expect(JSON.parse(quiet.stdout)).toMatchObject({ totals: { events: 0 } });

    const verbose = await runCliInProcess(['--verbose', 'usage', 'show'], env);
    expect(verbose.code, verbose.stderr).toBe(0);
    expect(JSON.parse(verbose.stdout)).toMatchObject({ totals: { events: 0 } });
    const logs = lines(verbose.stderr).map((line) => JSON.parse(line) as { msg: string });
    expect(logs.map((l) => l.msg)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^TOLLHOUSE_SECRET is not set/),
        expect.stringMatching(/^signer disabled/),
      ]),
    );
    // --verbose is global: after the command too.
    const after = await runCliInProcess(['usage', 'show', '--verbose'], env);
    expect(after.code).toBe(0);
    expect(after.stderr).toMatch(/signer disabled/);

    // LOG_LEVEL=error is quieter still: not even --verbose brings back info.
    const errorOnly = await runCliInProcess(['usage', 'show'], { ...env, LOG_LEVEL: 'error' });
    expect(errorOnly.stderr).toBe('');
  });
});

describe('the entry point', () => {
  it('refuses a Node.js too old for the TypeScript sources in one line', () => {
    for (const old of ['18.20.4', '20.20.2', '22.17.1', '23.5.0']) {
      expect(nodeVersionProblem(old)).toBe(
        `tollhouse needs Node.js 22.18 or newer (found v${old}); see README 'Getting Node 24'`,
      );
    }
    for (const fine of ['22.18.0', '22.20.1', '23.6.0', '24.0.0', '25.1.0']) {
      expect(nodeVersionProblem(fine)).toBeNull();
    }
  });

  // The system's Node, where it is older than 22.18 (Debian's is 20), runs the real entry.
  const systemNode = '/usr/bin/node';
  const systemVersion = existsSync(systemNode)
    ? spawnSync(systemNode, ['--version'], { encoding: 'utf8' }).stdout.trim().slice(1)
    : null;
  it.skipIf(systemVersion === null || nodeVersionProblem(systemVersion) === null)(
    `says so on the system's old Node.js (${systemVersion ?? 'absent'}) and exits 1`,
    () => {
      const result = spawnSync(systemNode, [path.join(ROOT, 'bin/tollhouse.js'), 'help'], {
        cwd: ROOT,
        env: childEnv({}),
        encoding: 'utf8',
      });
      expect(result.status).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(`${nodeVersionProblem(systemVersion!)}\n`);
    },
  );

  it('is executable in the checkout, so `npx tollhouse` leaves it clean', () => {
    for (const file of ['bin/tollhouse.js', 'src/main.ts']) {
      expect(statSync(path.join(ROOT, file)).mode & 0o111, file).not.toBe(0);
    }
  });
});
