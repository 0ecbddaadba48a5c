// `tollhouse keys …` as an operator runs it, JSON on stdout: in-process (the command line's
// own entry, as src/main.ts runs it), and once as a child process for the process boundary.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, secondLeg } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';
import { runCliInProcess } from '../support/cli.ts';
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
  const result = await runCliInProcess(['keys', ...args], settings);
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
    // 2: the command line is wrong (it names the option); 1: the service refused (it names
    // what does not exist or is not allowed).
    const cases: Array<[string[], number, RegExp]> = [
      [
        ['frobnicate'],
        2,
        /^tollhouse keys: unknown sub-command "frobnicate"; expected one of create,/,
      ],
      [['show'], 2, /^tollhouse keys: show needs a key id \(key_…\)\n/],
      [['show', 'key_nope'], 1, /^tollhouse: No API key "key_nope"\n$/],
      [['revoke', 'nope'], 1, /^tollhouse: No API key "nope"\n$/],
      [['show', 'key_0000000000000000000000'], 1, /No API key key_0000000000000000000000/],
      [['show', 'key_a', 'key_b'], 2, /show takes one key id, not 2/],
      [['create', '--email', 'nobody@example.com'], 1, /No account has the email "nobody@/],
      [['create', '--account', 'acct_a', '--email', 'a@example.com'], 2, /give one of them/],
      [['list'], 2, /name the account: --email <address> or --account <acct_…>/],
      [['create', '--email', 'ops@example.com', '--kind', 'browser'], 1, /allowed_origins/],
      [['create', '--email', 'ops@example.com', '--scope', 'root'], 2, /--scope/],
      [['create', '--email', 'ops@example.com', '--kind', 'kettle'], 2, /--kind/],
      [
        ['update', 'key_0000000000000000000000', '--no-expiry', '--expires-at', 'x'],
        2,
        /one of them/,
      ],
      [
        ['rotate', 'key_0000000000000000000000', '--grace-seconds', 'soon'],
        2,
        /--grace-seconds "soon": expected a whole number/,
      ],
      [['list', '--email'], 2, /--email/],
      [['list', '--colour', 'red'], 2, /Unknown option '--colour'/],
    ];
    for (const [args, code, message] of cases) {
      const result = await keys(...args);
      expect(result.code, args.join(' ')).toBe(code);
      expect(result.stderr, args.join(' ')).toMatch(message);
      expect(result.stderr).not.toMatch(/\n\s+at /);
      expect(result.stdout, args.join(' ')).toBe('');
    }
  });

  it('never echoes a key secret given where its id belongs', async () => {
    const secret = 'th_sk_0vJMpRLf0oX9m2lwdmw572F84UEvI2Adz2hyzMU';
    const result = await keys('show', secret);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/needs the key's id \(key_…\), not its secret/);
    expect(result.stderr).not.toContain(secret);
    expect(result.stderr).not.toContain(secret.slice(0, 12));
  });

  it.skipIf(secondLeg)(
    'as a child process: JSON on stdout and exit 0, one line on stderr and exit 2',
    async () => {
      const listed = await runCli(['keys', 'list', '--email', 'ops@example.com'], settings);
      expect(listed.code, listed.stderr).toBe(0);
      expect(listed.stderr).toBe('');
      expect(JSON.parse(listed.stdout).keys).toHaveLength(3);
      const wrong = await runCli(['keys', 'show'], settings);
      expect(wrong.code).toBe(2);
      expect(wrong.stderr).toMatch(/^tollhouse keys: show needs a key id \(key_…\)\n/);
      expect(wrong.stdout).toBe('');
    },
  );
});
