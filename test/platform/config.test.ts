import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { ConfigError, SETTINGS, loadConfig, parseConfig } from '../../src/config.ts';
import type { Config, Setting, SettingValues } from '../../src/config.ts';
import { renderConfigurationReference, renderEnvExample } from '../../src/config-reference.ts';
import { ROOT, runCli } from '../support/process.ts';

const SECRET = 'x'.repeat(64);

function problemsOf(env: Record<string, string>): string[] {
  try {
    parseConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('runs with no settings at all: embedded database, port 8080', () => {
    const config = parseConfig({});
    expect(config.http.port).toBe(8080);
    expect(config.http.publicUrl).toBe('http://localhost:8080');
    expect(config.database.url).toBeNull();
    expect(config.database.dataDir).toBe(path.resolve('.tollhouse'));
    expect(Object.isFrozen(config.http)).toBe(true);
  });

  it('names every bad setting at once', () => {
    const problems = problemsOf({ PORT: 'abc', DATABASE_URL: 'nope', LOG_LEVEL: 'loud' });
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/^PORT: expected an integer from 1 to 65535 \(got "abc"\)$/);
    expect(problems[1]).toMatch(/^DATABASE_URL: expected a postgres:\/\/ or postgresql:\/\/ URL$/);
    expect(problems[2]).toMatch(/^LOG_LEVEL: expected one of fatal, error/);
  });

  it('never echoes the value of a secret setting', () => {
    const problems = problemsOf({
      DATABASE_URL: 'mysql://user:hunter2@db/x',
      TOLLHOUSE_SECRET: 'short-but-secret',
    });
    expect(problems.join('\n')).not.toContain('hunter2');
    expect(problems.join('\n')).not.toContain('short-but-secret');
    expect(problems).toContainEqual(
      expect.stringMatching(/^TOLLHOUSE_SECRET: expected at least 32/),
    );
  });

  it('treats an empty variable as unset', () => {
    const config = parseConfig({ PORT: '', DATABASE_URL: '', LOG_LEVEL: '' });
    expect(config.http.port).toBe(8080);
    expect(config.database.url).toBeNull();
    expect(config.log.level).toBe('info');
  });

  it('requires TOLLHOUSE_SECRET with DATABASE_URL', () => {
    expect(problemsOf({ DATABASE_URL: 'postgres://db/tollhouse' })).toEqual([
      expect.stringMatching(/^TOLLHOUSE_SECRET: required when DATABASE_URL is set/),
    ]);
    const config = parseConfig({
      DATABASE_URL: 'postgres://db/tollhouse',
      TOLLHOUSE_SECRET: SECRET,
    });
    expect(config.secret).toBe(SECRET);
  });

  it('reads secrets from NAME_FILE, without the trailing newline', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-config-'));
    const file = path.join(dir, 'secret');
    writeFileSync(file, `${SECRET}\n`);
    const config = parseConfig({ DATABASE_URL: 'postgres://db/x', TOLLHOUSE_SECRET_FILE: file });
    expect(config.secret).toBe(SECRET);
  });

  it('refuses NAME and NAME_FILE together, and an unreadable or empty file', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-config-'));
    const empty = path.join(dir, 'empty');
    writeFileSync(empty, '');
    expect(problemsOf({ TOLLHOUSE_SECRET: SECRET, TOLLHOUSE_SECRET_FILE: empty })).toEqual([
      'TOLLHOUSE_SECRET: set TOLLHOUSE_SECRET or TOLLHOUSE_SECRET_FILE, not both',
    ]);
    expect(problemsOf({ TOLLHOUSE_SECRET_FILE: empty })).toEqual([
      `TOLLHOUSE_SECRET_FILE: ${empty} is empty`,
    ]);
    expect(problemsOf({ METRICS_TOKEN_FILE: path.join(dir, 'missing') })).toEqual([
      `METRICS_TOKEN_FILE: cannot read ${path.join(dir, 'missing')} (ENOENT)`,
    ]);
  });

  it('does not read NAME_FILE for settings that are not secrets', () => {
    expect(parseConfig({ PORT_FILE: '/nonexistent' }).http.port).toBe(8080);
  });

  it('generates the embedded secret once, keeps it private, and reuses it', () => {
    const dataDir = path.join(mkdtempSync(path.join(os.tmpdir(), 'tollhouse-config-')), 'data');
    const first = loadConfig({ TOLLHOUSE_DATA_DIR: dataDir });
    expect(first.config.secret).toMatch(/^[0-9a-f]{64}$/);
    expect(first.warnings).toEqual([expect.stringContaining('TOLLHOUSE_SECRET is not set')]);
    const file = path.join(dataDir, 'secret');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const second = loadConfig({ TOLLHOUSE_DATA_DIR: dataDir });
    expect(second.config.secret).toBe(first.config.secret);
    expect(readFileSync(file, 'utf8').trim()).toBe(first.config.secret);
  });

  it('is what docs/configuration.md and .env.example say (regenerate with npm run docs:config)', () => {
    const reference = readFileSync(path.join(ROOT, 'docs/configuration.md'), 'utf8');
    const example = readFileSync(path.join(ROOT, '.env.example'), 'utf8');
    expect(reference).toBe(renderConfigurationReference());
    expect(example).toBe(renderEnvExample());
    // The rendering itself names every setting, with its default and secrecy.
    for (const [name, setting] of Object.entries(SETTINGS) as Array<[string, Setting]>) {
      const label = setting.secret === true ? `\`${name}\` 🔒` : `\`${name}\``;
      expect(reference, `docs/configuration.md lacks ${name}`).toContain(`| ${label} |`);
      expect(example, `.env.example lacks ${name}`).toMatch(new RegExp(`^# ${name}=`, 'm'));
    }
  });

  it('types each value by its schema, so a misspelt setting does not compile', () => {
    // Checked by tsc (npm run typecheck), not at run time: the parsed record is typed by name,
    // optional exactly when the setting has no default.
    expectTypeOf<SettingValues['PORT']>().toEqualTypeOf<number>();
    expectTypeOf<SettingValues['TRUST_PROXY']>().toEqualTypeOf<boolean>();
    expectTypeOf<SettingValues['SIGNER_MAX_PER_TX_WEI']>().toEqualTypeOf<bigint | undefined>();
    expectTypeOf<SettingValues['LOG_LEVEL']>().toEqualTypeOf<Config['log']['level']>();
    expectTypeOf<SettingValues>().not.toHaveProperty('PORTT');
    expectTypeOf<Config['billing']['closeAfterMs']>().toEqualTypeOf<number | null>();
  });

  it('parses every documented default with its own schema', () => {
    for (const [name, setting] of Object.entries(SETTINGS) as Array<[string, Setting]>) {
      if (setting.default === undefined) continue;
      expect(setting.schema.safeParse(setting.default).success, name).toBe(true);
    }
  });
});

describe('tollhouse serve with an invalid setup', () => {
  it('exits non-zero with one message naming every bad setting and no stack trace', async () => {
    const result = await runCli(['serve'], { PORT: 'abc', DATABASE_URL: 'nope' });
    expect(result.code).toBe(78);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      [
        'Invalid configuration:',
        '  - PORT: expected an integer from 1 to 65535 (got "abc")',
        '  - DATABASE_URL: expected a postgres:// or postgresql:// URL',
        '',
      ].join('\n'),
    );
  });
});
