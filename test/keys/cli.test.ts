// `tollhouse keys …` as an operator runs it: a child process, JSON on stdout.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';
import { runCli } from '../support/process.ts';

let database: TestDatabase;
let settings: Record<string, string>;

beforeAll(async () => {
  database = await createTestDatabase();
  settings = {
    ...(await database.forChildren()).env,
    TOLLHOUSE_SECRET: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'warn',
  };
});
afterAll(async () => {
  await database.destroy();
});

async function keys(...args: string[]) {
  const result = await runCli(['keys', ...args], settings);
  return { ...result, json: result.code === 0 ? JSON.parse(result.stdout) : undefined };
}

describe('tollhouse keys', () => {
  it('bootstraps an operator key on a fresh install, then manages keys', async () => {
    const hint = await keys('create', '--admin');
    expect(hint.code).toBe(2);
    expect(hint.stderr).toMatch(/--email/);
    expect(hint.stdout).toBe('');

    const admin = await keys('create', '--admin', '--email', 'ops@example.com');
    expect(admin.code, admin.stderr).toBe(0);
    expect(admin.stderr).toMatch(/created administrator account acct_/);
    expect(admin.json.secret).toMatch(/^th_sk_/);
    expect(admin.json.key).toMatchObject({
      scopes: ['admin'],
      created_by: 'cli',
      status: 'active',
    });

    const browser = await keys(
      'create',
      '--email',
      'ops@example.com',
      '--kind',
      'browser',
      '--name',
      'site',
      '--origin',
      'https://app.example.com',
      '--resource',
      'text-to-image',
      '--resource',
      'llm',
    );
    expect(browser.code, browser.stderr).toBe(0);
    expect(browser.json.key).toMatchObject({
      kind: 'browser',
      allowed_resources: ['text-to-image', 'llm'],
    });

    const listed = await keys('list', '--email', 'ops@example.com');
    expect(listed.code).toBe(0);
    expect(listed.json.keys).toHaveLength(2);
    expect(listed.stdout).not.toContain(admin.json.secret);

    const id = browser.json.key.id as string;
    const updated = await keys('update', id, '--name', 'shop', '--resource', 'upscale');
    expect(updated.json).toMatchObject({ name: 'shop', allowed_resources: ['upscale'] });

    const rotated = await keys('rotate', id, '--grace-seconds', '0');
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.json.previous).toMatchObject({
      status: 'revoked',
      replaced_by: rotated.json.key.id,
    });
    expect(rotated.json.secret).toMatch(/^th_ck_/);

    const revoked = await keys('revoke', rotated.json.key.id);
    expect(revoked.json.status).toBe('revoked');
    const shown = await keys('show', rotated.json.key.id);
    expect(shown.json.status).toBe('revoked');
  });

  it('explains bad invocations without a stack trace', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['frobnicate'], 2, /Unknown keys subcommand/],
      [['show', 'nope'], 2, /needs a key id/],
      [['show', 'key_0000000000000000000000'], 1, /No API key/],
      [['create', '--email', 'nobody@example.com'], 2, /no account has the email/],
      [['create', '--email', 'ops@example.com', '--kind', 'browser'], 1, /allowed_origins/],
      [['create', '--email', 'ops@example.com', '--scope', 'root'], 2, /scopes/],
      [['rotate', 'key_0000000000000000000000', '--grace-seconds', 'soon'], 2, /grace_seconds/],
    ];
    for (const [args, code, message] of cases) {
      const result = await keys(...args);
      expect(result.code, args.join(' ')).toBe(code);
      expect(result.stderr, args.join(' ')).toMatch(message);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    }
  });
});
