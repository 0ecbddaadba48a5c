// `tollhouse plans …` and `tollhouse billing …` as an operator runs them, in-process (the
// command line's own entry, as src/main.ts runs it) on this file's database (on PGlite an
// embedded data folder); one test runs each group as a child process, for the process boundary.
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATEMENT_COLUMNS } from '../../src/billing/index.ts';
import { createMetering } from '../../src/metering/index.ts';
import { createAuthenticator } from '../../src/platform/auth.ts';
import { createLogger } from '../../src/platform/log.ts';
import { createAccount } from '../support/fixtures.ts';
import { runCliInProcess } from '../support/cli.ts';
import { runCli } from '../support/process.ts';
import { createTestDatabase, secondLeg } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';

const log = createLogger({ level: 'silent' });
let env: Record<string, string>;
let account: string;
let storage: TestDatabase;
afterAll(async () => storage?.destroy());

beforeAll(async () => {
  storage = await createTestDatabase();
  const children = await storage.forChildren();
  env = {
    ...children.env,
    TOLLHOUSE_SECRET: 'b'.repeat(64),
    LOG_LEVEL: 'error',
    BILLING_ETH_USD_RATE: '2500',
    BILLING_AUTO_CLOSE: 'false',
  };
  const database = await children.open();
  try {
    account = await createAccount(database.db);
    const { service } = createMetering({
      database,
      log,
      authenticator: createAuthenticator([]),
      appOwner: async () => null,
    });
    await service.record(
      Array.from({ length: 5 }, (_, i) => ({
        source: 'cli',
        eventId: String(i),
        occurredAt: new Date(`2026-08-0${i + 1}T00:00:00Z`),
        accountId: account,
        appId: null,
        keyId: null,
        clientId: null,
        endUserId: null,
        pipeline: i % 2 ? 'llm' : 'text-to-image',
        modelId: i % 2 ? 'llama' : null,
        unit: (i % 2 ? 'tokens' : 'pixels') as 'tokens',
        quantity: 1000n,
        feeWei: 10n ** 15n,
        status: 200,
        latencyMs: 1,
        attributes: {},
      })),
    );
  } finally {
    await database.close();
  }
});

describe('tollhouse plans / billing', () => {
  it('creates a plan, closes a month, exports it, and refuses bad arguments', async () => {
    const plan = await runCliInProcess(
      [
        'plans',
        'create',
        '--id',
        'std',
        '--name',
        'Standard',
        '--fee',
        '5.5',
        '--default',
        '--price',
        'llm:*:tokens:usd:0.002/1',
      ],
      env,
    );
    expect(plan.code, plan.stderr).toBe(0);
    expect(JSON.parse(plan.stdout)).toMatchObject({
      id: 'std',
      monthly_fee_usd_micros: '5500000',
      default: true,
      prices: [{ currency: 'usd_micros', amount: '2000' }],
    });
    const bad = await runCliInProcess(
      ['plans', 'create', '--name', 'x', '--price', 'llm:tokens'],
      env,
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--price llm:tokens: expected/);

    const close = await runCliInProcess(['billing', 'close', '--month', '2026-08'], env);
    expect(close.code, close.stderr).toBe(0);
    expect(JSON.parse(close.stdout)).toMatchObject({
      month: '2026-08',
      closed: true,
      statements: 1,
    });
    const again = await runCliInProcess(['billing', 'close', '--month', '2026-08'], env);
    expect(JSON.parse(again.stdout)).toMatchObject({ closed: false, statements: 1 });
    const early = await runCliInProcess(['billing', 'close', '--month', '2099-01'], env);
    // A refusal of the service exits 1; a malformed command line exits 2, naming what is wrong.
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(/not over yet/);
    const missing = await runCliInProcess(['billing', 'close'], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^tollhouse billing: close needs --month YYYY-MM\n/);
    const invalid = await runCliInProcess(['billing', 'close', '--month', '2026-13'], env);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(
      /^tollhouse billing: --month "2026-13": not a month; expected YYYY-MM/,
    );
    for (const [args, message] of [
      [
        ['billing', 'export', '--month', '2026-08', '--format', 'xml'],
        '--format "xml": expected csv or json',
      ],
      [['billing', 'credit', '--account', 'acct_x', '--usd', '1'], 'credit needs --reference'],
      [['billing', 'credit', '--account', 'acct_x', '--usd', 'lots', '--reference', 'r'], '--usd'],
      [['plans', 'subscribe', '--account', 'acct_x'], 'subscribe needs --plan'],
      [
        ['plans', 'subscribe', '--account', 'acct_x', '--plan', 'p', '--effective', '2026-00'],
        '--effective "2026-00": not a month',
      ],
      [['plans', 'show'], 'show needs one plan id'],
      [['plans', 'launch'], 'unknown sub-command "launch"'],
    ] as const) {
      const refused = await runCliInProcess([...args], env);
      expect({ args, code: refused.code }).toEqual({ args, code: 2 });
      expect(refused.stderr).toContain(message);
    }

    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'tollhouse-billing-cli-')), 'aug.csv');
    const exported = await runCliInProcess(
      ['billing', 'export', '--month', '2026-08', '--format', 'csv', '--out', out],
      env,
    );
    expect(exported.code, exported.stderr).toBe(0);
    const text = readFileSync(out, 'utf8');
    expect(text.split('\r\n')[0]).toBe(STATEMENT_COLUMNS.join(','));
    const rows = parse<Record<string, string>>(text, { columns: true });
    expect(rows).toHaveLength(2);
    expect(rows.find((r) => r.pipeline === 'llm')).toMatchObject({
      price_currency: 'usd_micros',
      charge_usd: '4.000000',
      quantity: '2000',
    });
    // text-to-image is unpriced: billed at cost, 3e15 wei at $2500/ETH = $7.50.
    expect(rows.find((r) => r.pipeline === 'text-to-image')).toMatchObject({
      price_currency: 'cost',
      charge_usd: '7.500000',
      eth_usd_rate: '2500',
    });
    const json = await runCliInProcess(
      ['billing', 'export', '--month', '2026-08', '--format', 'json'],
      env,
    );
    expect(
      json.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toHaveLength(2);
    const usage = await runCliInProcess(['billing', 'export-usage', '--month', '2026-08'], env);
    expect(usage.stdout.trim().split('\n')).toHaveLength(5);
    expect(
      (await runCliInProcess(['billing', 'export', '--month', '2026-08', '--format', 'xml'], env))
        .code,
    ).toBe(2);

    const credit = await runCliInProcess(
      ['billing', 'credit', '--account', account, '--usd', '12.5', '--reference', 'promo'],
      env,
    );
    expect(JSON.parse(credit.stdout)).toMatchObject({
      recorded: true,
      balance_usd_micros: '12500000',
    });
    const twice = await runCliInProcess(
      ['billing', 'credit', '--account', account, '--usd', '12.5', '--reference', 'promo'],
      env,
    );
    expect(JSON.parse(twice.stdout)).toMatchObject({
      recorded: false,
      balance_usd_micros: '12500000',
    });
    // Not a usage mistake but a setup the operator must change: 1, naming the setting.
    const stripe = await runCliInProcess(['billing', 'stripe-sync'], env);
    expect(stripe.code).toBe(1);
    expect(stripe.stderr).toMatch(/STRIPE_SECRET_KEY/);
  });

  it.skipIf(secondLeg)(
    'as child processes: JSON on stdout and exit 0, one line on stderr and exit 1',
    async () => {
      const plans = await runCli(['plans', 'show', 'std'], env);
      expect(plans.code, plans.stderr).toBe(0);
      expect(plans.stderr).toBe('');
      expect(JSON.parse(plans.stdout)).toMatchObject({ id: 'std', default: true });
      const early = await runCli(['billing', 'close', '--month', '2099-01'], env);
      expect(early.code).toBe(1);
      expect(early.stderr).toMatch(/^tollhouse: .*not over yet/);
      expect(early.stdout).toBe('');
    },
  );
});
