// The operator's commands: accounts …, apps …, identity rotate-keys. They run in-process (the
// command line's own entry, as src/main.ts runs it); one test runs each group as a child
// process, for the process boundary (exit status, stdout, stderr).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, secondLeg } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';
import { runCliInProcess } from '../support/cli.ts';
import { runCli } from '../support/process.ts';

let database: TestDatabase;
let env: Record<string, string>;
const dir = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-identity-cli-'));

beforeAll(async () => {
  database = await createTestDatabase();
  env = {
    TOLLHOUSE_SECRET: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'error',
    ...(await database.forChildren()).env,
  };
});
afterAll(async () => database.destroy());

async function cli(args: string[]) {
  const result = await runCliInProcess(args, env);
  return { ...result, json: result.code === 0 ? JSON.parse(result.stdout) : null };
}

describe('tollhouse accounts / apps / identity', () => {
  it('bootstraps an admin, manages an app and rotates keys', async () => {
    const passwordFile = path.join(dir, 'password');
    writeFileSync(passwordFile, 'a long operator password\n', { mode: 0o600 });
    const account = await cli([
      'accounts',
      'create',
      '--email',
      'ops@example.com',
      '--password-file',
      passwordFile,
      '--admin',
    ]);
    expect(account.stderr).toBe('');
    expect(account.json).toMatchObject({
      email: 'ops@example.com',
      is_admin: true,
      status: 'active',
    });
    expect(account.stdout).not.toContain('a long operator password');

    const again = await cli([
      'accounts',
      'create',
      '--email',
      'OPS@example.com',
      '--password-file',
      passwordFile,
    ]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists');

    const created = await cli([
      'apps',
      'create',
      '--name',
      'Render Farm',
      '--kind',
      'machine',
      '--owner',
      'ops@example.com',
      '--scope',
      'gateway',
      '--scope',
      'usage:read',
    ]);
    expect(created.json).toMatchObject({
      kind: 'machine',
      scopes: ['gateway', 'usage:read'],
      owner_account_id: account.json.id,
    });
    expect(created.json.client_secret).toMatch(/^thcs_/);
    const id = created.json.id as string;

    const listed = await cli(['apps', 'list']);
    expect(listed.json.apps).toHaveLength(1);
    expect(listed.stdout).not.toContain(created.json.client_secret);

    const rotated = await cli(['apps', 'rotate-secret', id, '--grace-seconds', '60']);
    expect(rotated.json.client_secret).not.toBe(created.json.client_secret);
    expect(rotated.json.previous_secret_expires_at).not.toBeNull();

    const disabled = await cli(['apps', 'disable', id]);
    expect(disabled.json.status).toBe('disabled');

    const renamed = await cli([
      'accounts',
      'update',
      'OPS@example.com',
      '--name',
      'Operations',
      '--email',
      'ops@corp.example',
    ]);
    expect(renamed.json).toMatchObject({ id: account.json.id, name: 'Operations' });
    const found = await cli(['accounts', 'list', '--query', 'corp']);
    expect(found.json).toEqual({ accounts: [renamed.json], next_cursor: null });
    const off = await cli(['accounts', 'disable', account.json.id]);
    expect(off.json.status).toBe('disabled');
    const on = await cli(['accounts', 'enable', 'ops@corp.example']);
    expect(on.json.status).toBe('active');
    expect((await cli(['accounts', 'show', account.json.id])).json).toEqual(on.json);

    const keys = await cli(['identity', 'rotate-keys']);
    expect(keys.json).toMatchObject({
      active_kid: expect.any(String),
      next_kid: expect.any(String),
    });
  });

  it('refuses bad input with a message and a non-zero exit', async () => {
    const missing = await cli([
      'accounts',
      'create',
      '--email',
      'x@example.com',
      '--password-file',
      path.join(dir, 'nope'),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--password-file: cannot read');
    const kind = await cli([
      'apps',
      'create',
      '--name',
      'x',
      '--kind',
      'rocket',
      '--owner',
      'ops@example.com',
    ]);
    expect(kind.code).toBe(2);
    expect(kind.stderr).toContain('--kind "rocket": expected public, web or machine');
    const unknown = await cli(['apps', 'show', 'app_0000000000000000000000']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('No app');
    const usage = await runCliInProcess(['apps', 'explode'], env);
    expect(usage.code).toBe(2);
    // 1: the service refused; 2: the command line is wrong.
    for (const [args, code, message] of [
      [['accounts', 'show', 'nobody@example.com'], 1, 'No account'],
      [['accounts', 'update', 'ops@corp.example'], 1, 'at least one'],
      [['accounts', 'update', 'ops@corp.example', '--email', 'not-an-email'], 1, 'email'],
      [['accounts', 'update', 'ops@corp.example', '--status', 'gone'], 2, '--status "gone"'],
      [['accounts', 'list', '--cursor', '!!'], 2, '--cursor'],
      [['accounts', 'list', '--limit', '0'], 2, '--limit "0"'],
      [['accounts', 'disable'], 2, 'disable needs an account id (acct_…) or email'],
      [['accounts', 'create', '--password-file', path.join(dir, 'nope')], 2, 'cannot read'],
      [['apps', 'show'], 2, 'show needs an app id (app_…)'],
      [['apps', 'rotate-secret', 'app_x', '--grace-seconds', '-1'], 2, '--grace-seconds'],
      [['identity', 'rotate-keys', 'now'], 2, 'rotate-keys takes no arguments'],
    ] as const) {
      const refused = await cli([...args]);
      expect({ args, code: refused.code }).toEqual({ args, code });
      expect(refused.stderr).toContain(message);
    }
    expect((await runCliInProcess(['accounts', 'explode'], env)).code).toBe(2);
  });
  it('resets a second factor (accounts reset-second-factor): 0, unknown account 1, usage 2', async () => {
    const passwordFile = path.join(dir, 'password-reset');
    writeFileSync(passwordFile, 'a long holder password\n', { mode: 0o600 });
    const holder = await cli([
      'accounts',
      'create',
      '--email',
      'lost-phone@example.com',
      '--password-file',
      passwordFile,
    ]);
    const reset = await cli(['accounts', 'reset-second-factor', 'lost-phone@example.com']);
    expect(reset.code).toBe(0);
    expect(reset.json).toEqual({
      id: holder.json.id,
      email: 'lost-phone@example.com',
      totp_removed: false,
      recovery_codes_removed: 0,
      passkeys_removed: 0,
      sessions_ended: 0,
    });
    const unknown = await cli(['accounts', 'reset-second-factor', 'nobody@example.com']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('No account nobody@example.com');
    const missing = await cli(['accounts', 'reset-second-factor']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('reset-second-factor needs an account id (acct_…) or email');
    const extra = await cli(['accounts', 'reset-second-factor', 'a@example.com', 'b@example.com']);
    expect(extra.code).toBe(2);
    expect(extra.stderr).toContain('takes one argument');
  });

  it('lists and revokes open invitations (accounts invitations)', async () => {
    const invited = await cli(['accounts', 'invite', 'guest@example.com', '--no-email']);
    expect(invited.code).toBe(0);
    expect(invited.json.link).toContain('/account/invitation?token=thiv_');
    const listed = await cli(['accounts', 'invitations', 'list']);
    expect(listed.code).toBe(0);
    expect(listed.json.invitations).toEqual([
      expect.objectContaining({ email: 'guest@example.com', created_by: 'cli' }),
    ]);
    const revoked = await cli(['accounts', 'invitations', 'revoke', 'Guest@Example.com']);
    expect(revoked.json).toEqual({ email: 'Guest@Example.com', revoked: 1 });
    expect((await cli(['accounts', 'invitations', 'list'])).json.invitations).toEqual([]);
    const again = await cli(['accounts', 'invitations', 'revoke', 'guest@example.com']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('No open invitation');
    expect((await cli(['accounts', 'invitations', 'purge'])).code).toBe(2);
  });

  it.skipIf(secondLeg)(
    'as child processes: JSON on stdout and exit 0, one line on stderr and exit 1',
    async () => {
      const accounts = await runCli(['accounts', 'show', 'ops@corp.example'], env);
      expect(accounts.code, accounts.stderr).toBe(0);
      expect(accounts.stderr).toBe('');
      expect(JSON.parse(accounts.stdout)).toMatchObject({ email: 'ops@corp.example' });
      const unknown = await runCli(['apps', 'show', 'app_0000000000000000000000'], env);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/^tollhouse: No app.*\n$/);
      expect(unknown.stdout).toBe('');
    },
  );
});
