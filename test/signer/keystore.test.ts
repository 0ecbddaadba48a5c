// The keystore: `tollhouse keystore` commands (in-process, the command line's own entry as
// src/main.ts runs it; a child process where stdin is read), files from another
// implementation, and how `serve` treats a keystore it cannot open.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { describe, expect, it } from 'vitest';
import { openKeystore, writeKeystore } from '../../src/signer/index.ts';
import { runCliInProcess } from '../support/cli.ts';
import { migratedDataDir } from '../support/db.ts';
import { ROOT, freePort, runCli, serve } from '../support/process.ts';
import type { CliResult } from '../support/process.ts';

const FOREIGN = path.join(ROOT, 'test/signer/fixtures/foreign-keystore.json');
const FOREIGN_PASSWORD = 'tollhouse-foreign-keystore';
const FOREIGN_ADDRESS = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC';

function tempDir() {
  return mkdtempSync(path.join(os.tmpdir(), 'tollhouse-keystore-'));
}

/** runCli with text on stdin (support/process.ts closes stdin). */
function runWithStdin(args: string[], stdin: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'src/main.ts'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe('keystore', () => {
  it('opens a keystore written by another Web3 Secret Storage implementation', async () => {
    const wallet = await openKeystore(FOREIGN, FOREIGN_PASSWORD);
    expect(wallet.address).toBe(FOREIGN_ADDRESS);
    const result = await runCliInProcess(['keystore', 'address', FOREIGN]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ address: FOREIGN_ADDRESS });
  });

  it('creates a geth-compatible keystore that ethers opens, private to its owner, never overwritten', async () => {
    const dir = tempDir();
    const passwordFile = path.join(dir, 'password');
    writeFileSync(passwordFile, 'a long passphrase\n');
    const out = path.join(dir, 'key.json');
    const created = await runCliInProcess([
      'keystore',
      'create',
      '--out',
      out,
      '--password-file',
      passwordFile,
    ]);
    expect(created.code).toBe(0);
    const { address } = JSON.parse(created.stdout) as { address: string };
    expect(created.stdout + created.stderr).not.toMatch(/[0-9a-f]{64}/i);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const json = JSON.parse(readFileSync(out, 'utf8')) as {
      version: number;
      crypto: { kdf: string; cipher: string; kdfparams: { n: number } };
    };
    expect(json).toMatchObject({
      version: 3,
      crypto: { kdf: 'scrypt', cipher: 'aes-128-ctr', kdfparams: { n: 262144 } },
    });
    // The trailing newline of the password file is not part of the password.
    expect((await openKeystore(out, 'a long passphrase')).address).toBe(address);
    await expect(openKeystore(out, 'a long passphrase\n')).rejects.toThrow(/wrong password/);

    const again = await runCliInProcess([
      'keystore',
      'create',
      '--out',
      out,
      '--password-file',
      passwordFile,
    ]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists; refusing to overwrite/);
  });

  it('imports a raw private key from stdin and round-trips it', async () => {
    const dir = tempDir();
    const passwordFile = path.join(dir, 'password');
    writeFileSync(passwordFile, 'pw-for-import');
    const wallet = Wallet.createRandom();
    const out = path.join(dir, 'imported.json');
    const result = await runWithStdin(
      ['keystore', 'import', '--out', out, '--password-file', passwordFile],
      `${wallet.privateKey.slice(2)}\n`,
    );
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ address: wallet.address, file: out });
    expect(result.stdout + result.stderr).not.toContain(wallet.privateKey.slice(2));
    const opened = await openKeystore(out, 'pw-for-import');
    expect(opened.privateKey).toBe(wallet.privateKey);

    const bad = await runWithStdin(
      ['keystore', 'import', '--out', path.join(dir, 'bad.json'), '--password-file', passwordFile],
      'not a key',
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('tollhouse: expected a private key of 64 hex digits on stdin\n');
  });

  it('answers bad arguments with usage and exit status 2', async () => {
    const noOut = await runCliInProcess(['keystore', 'create']);
    expect(noOut.code).toBe(2);
    expect(noOut.stderr).toMatch(/^tollhouse keystore: create needs --out FILE\n/);
    const unknown = await runCliInProcess(['keystore', 'frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^tollhouse keystore: unknown sub-command "frobnicate"/);
    // The usage follows an unknown sub-command.
    expect(unknown.stderr).toMatch(/\n\nUsage: tollhouse keystore <subcommand>/);
    const notKeystore = await runCliInProcess([
      'keystore',
      'address',
      path.join(ROOT, 'package.json'),
    ]);
    expect(notKeystore.code).toBe(1);
    expect(notKeystore.stderr).toMatch(/is not a Web3 Secret Storage v3 keystore/);
  });

  it('makes serve exit at start-up with one clear line when the password is wrong', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'key.json');
    await writeKeystore(file, Wallet.createRandom().privateKey, 'right', { scryptN: 1024 });
    const passwordFile = path.join(dir, 'password');
    writeFileSync(passwordFile, 'wrong\n');
    const proc = serve(await freePort(), {
      TOLLHOUSE_DATA_DIR: await migratedDataDir(),
      SIGNER_KEYSTORE_FILE: file,
      SIGNER_PASSWORD_FILE: passwordFile,
      LOG_LEVEL: 'error',
    });
    const exit = await proc.exited;
    expect(exit.code).toBe(1);
    expect(proc.output()).toBe(
      `tollhouse: cannot open the signer keystore ${file}: wrong password (check SIGNER_PASSWORD or SIGNER_PASSWORD_FILE)\n`,
    );
    expect(proc.output()).not.toContain('wrong\n\n');

    // A keystore without a password is a configuration error, reported before anything starts.
    const missing = await runCli(['serve'], { SIGNER_KEYSTORE_FILE: file });
    expect(missing.code).toBe(78);
    expect(missing.stderr).toContain('SIGNER_PASSWORD: required with SIGNER_KEYSTORE_FILE');
  });
});
