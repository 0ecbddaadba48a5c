// Embedded mode holds the database in one process: a CLI command run while `serve` is up is
// sent over <TOLLHOUSE_DATA_DIR>/control.sock and run by the server (issue #18 item 6). A real
// `serve` child process and real CLI child processes, as an operator would run them.
import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { forwardToControlServer, startControlServer } from '../../src/platform/control.ts';
import { createLogger } from '../../src/platform/log.ts';
import { migratedDataDir } from '../support/db.ts';
import { PASSWORD } from '../support/fixtures.ts';
import { freePort, runCli, serve, waitReady } from '../support/process.ts';

/** Sends raw bytes to the socket; returns every frame the server answered. */
function raw(file: string, bytes: string): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = net.connect(file, () => socket.write(bytes));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    // The server drops an oversized request: the client may see the reset while writing.
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') reject(error);
    });
    socket.on('close', () =>
      resolve(
        text
          .split('\n')
          .filter((line) => line !== '')
          .map((line) => JSON.parse(line) as Record<string, unknown>),
      ),
    );
  });
}

describe('control socket (embedded mode)', () => {
  it(
    'runs CLI commands in the running server instead of refusing them',
    { timeout: 240_000 },
    async () => {
      // Migrated beforehand (the subject is the socket, not the first migration); no operator yet.
      const dataDir = await migratedDataDir();
      const port = await freePort();
      const proc = serve(port, {
        TOLLHOUSE_DATA_DIR: dataDir,
        PUBLIC_URL: `http://127.0.0.1:${port}`,
      });
      try {
        await waitReady(proc);
        const socket = path.join(dataDir, 'control.sock');
        expect(statSync(socket).mode & 0o777).toBe(0o600);
        expect(statSync(socket).isSocket()).toBe(true);

        // The first run's link, on the terminal.
        const link = /(http:\/\/127\.0\.0\.1:\d+\/setup\?token=thsu_\w+)/.exec(proc.output())?.[1];
        expect(proc.output()).toContain('No operator yet. Create the first one here');
        expect(link).toBeDefined();
        expect((await fetch(link!)).status).toBe(200);

        // The password file is read by the server (the same OS user), at the path given.
        const folder = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-cli-'));
        writeFileSync(path.join(folder, 'password.txt'), `${PASSWORD}\n`);
        const created = await runCli(
          [
            'accounts',
            'create',
            '--email',
            'op@example.com',
            '--password-file',
            path.join(folder, 'password.txt'),
            '--admin',
          ],
          { TOLLHOUSE_DATA_DIR: dataDir, LOG_LEVEL: 'error' },
        );
        expect(created.stderr).not.toMatch(/in use by process/);
        expect(created.code, created.stderr).toBe(0);
        expect(JSON.parse(created.stdout)).toMatchObject({
          email: 'op@example.com',
          is_admin: true,
        });

        // The server made it: the setup link is dead now, and the account can sign in.
        expect((await fetch(link!)).status).toBe(404);
        const listed = await runCli(['accounts', 'list'], { TOLLHOUSE_DATA_DIR: dataDir });
        expect(listed.code, listed.stderr).toBe(0);
        expect(listed.stdout).toContain('op@example.com');

        // Refusals keep their exit status and message: a usage error (2), a service's no (1).
        const usage = await runCli(['accounts', 'create'], { TOLLHOUSE_DATA_DIR: dataDir });
        expect(usage.code).toBe(2);
        expect(usage.stderr).toContain('tollhouse accounts: create needs --password-file');
        const missing = await runCli(['accounts', 'show', 'acct_nope'], {
          TOLLHOUSE_DATA_DIR: dataDir,
        });
        expect(missing.code).toBe(1);
        expect(missing.stderr).toContain('No account acct_nope');

        // Hostile clients: not JSON, not a list of strings, a command the server does not run.
        expect(await raw(socket, 'nonsense\n')).toEqual([
          { err: 'tollhouse: the control socket expects {"argv":[…]}\n' },
          { exit: 2 },
        ]);
        expect((await raw(socket, '{"argv":[1,2]}\n')).at(-1)).toEqual({ exit: 2 });
        const serveAgain = await raw(socket, '{"argv":["serve"]}\n');
        expect(serveAgain.at(-1)).toEqual({ exit: 2 });
        expect(await raw(socket, `{"argv":["${'x'.repeat(300_000)}`)).toEqual([]);

        proc.child.kill('SIGTERM');
        expect(await proc.exited).toEqual({ code: 0, signal: null });
        expect(existsSync(socket)).toBe(false);
      } finally {
        proc.child.kill('SIGKILL');
      }
    },
  );
});

describe('control socket (in process)', () => {
  it('resolves file options against the client folder, and finds no server once closed', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-control-'));
    const seen: string[][] = [];
    const control = await startControlServer({
      dataDir,
      log: createLogger({ level: 'silent' }),
      run: async (argv, io) => {
        seen.push(argv);
        io.out('result\n');
        io.stdout.write('streamed\n');
        io.err('note\n');
        return 3;
      },
    });
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t) };
    const code = await forwardToControlServer(
      dataDir,
      ['accounts', 'create', '--password-file', 'pw.txt', '--out=report.csv', '--name', 'pw.txt'],
      io,
      '/home/operator',
    );
    expect(code).toBe(3);
    expect(seen).toEqual([
      [
        'accounts',
        'create',
        '--password-file',
        '/home/operator/pw.txt',
        '--out=/home/operator/report.csv',
        '--name',
        'pw.txt',
      ],
    ]);
    expect(out).toEqual(['result\n', 'streamed\n']);
    expect(err).toEqual(['note\n']);
    await control.close();
    expect(await forwardToControlServer(dataDir, ['accounts', 'list'], io)).toBeNull();
  });
});
