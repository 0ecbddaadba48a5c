// `tollhouse billing prepaid …` in-process: the command's own entry function over a test app
// (no child process), its JSON on stdout, the audit rows it leaves, and the usage errors.
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { billingCommands } from '../../src/billing/index.ts';
import type { BillingCliDeps } from '../../src/billing/index.ts';
import { CliUsageError } from '../../src/platform/cli.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { newAccount } from '../support/fixtures.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({
    env: { BILLING_ETH_USD_RATE: '2000', BILLING_AUTO_CLOSE: 'false' },
  });
});
afterAll(async () => t?.close());

/** Runs `tollhouse billing <args>` in this process; stdout parsed as JSON. */
async function billing(args: string[]) {
  let out = '';
  const deps: BillingCliDeps = {
    service: t.app.billing.service,
    stripe: t.app.billing.stripe,
    db: t.app.database.db,
    usage: t.app.metering.reads,
    prepaid: t.app.billing.prepaid,
  };
  let opened = false;
  const code = await billingCommands.billing!.run(args, {
    io: {
      out: (text) => (out += text),
      err: () => undefined,
      stdout: new PassThrough(),
      stdin: new PassThrough(),
    },
    open: async () => {
      opened = true;
      return deps;
    },
  });
  return { code, json: out === '' ? null : JSON.parse(out), opened };
}

async function refused(args: string[]) {
  let opened = false;
  let error: unknown;
  try {
    const r = await billing(args);
    opened = r.opened;
  } catch (e) {
    error = e;
  }
  expect(error, args.join(' ')).toBeInstanceOf(CliUsageError);
  expect(opened).toBe(false);
  return (error as Error).message;
}

describe('tollhouse billing prepaid', () => {
  it('shows, sets the mode and auto-recharge, audited as cli; refuses bad arguments', async () => {
    const account = await newAccount(t);
    const mode = await billing(['prepaid', 'set-mode', account, 'prepaid']);
    expect(mode).toMatchObject({ code: 0, json: { account_id: account, mode: 'prepaid' } });
    const on = await billing([
      'prepaid',
      'auto-recharge',
      account,
      '--threshold',
      '10',
      '--amount',
      '25.50',
      '--monthly-max',
      '100',
    ]);
    expect(on.json.auto_recharge).toEqual({
      enabled: true,
      threshold_usd_micros: '10000000',
      amount_usd_micros: '25500000',
      monthly_max_usd_micros: '100000000',
      payment_method_saved: false,
    });
    const off = await billing(['prepaid', 'auto-recharge', account, '--off']);
    // Off keeps the amounts, so turning it on again needs no retyping in the console.
    expect(off.json.auto_recharge).toMatchObject({ enabled: false, amount_usd_micros: '25500000' });
    const shown = await billing(['prepaid', 'show', account]);
    expect(shown.json).toMatchObject({
      account_id: account,
      mode: 'prepaid',
      balance_usd_micros: '0',
      month_usage_wei: '0',
      recharges: [],
    });
    const audit = await t.app.database.db
      .selectFrom('audit_log')
      .select(['actor', 'action'])
      .where('subject', '=', account)
      .orderBy('id')
      .execute();
    expect(audit).toEqual([
      { actor: 'cli', action: 'billing.mode' },
      { actor: 'cli', action: 'billing.auto_recharge' },
      { actor: 'cli', action: 'billing.auto_recharge' },
    ]);

    expect(await refused(['prepaid', 'show'])).toMatch(/needs an account/);
    expect(await refused(['prepaid', 'show', 'bob'])).toMatch(/not an account id/);
    expect(await refused(['prepaid', 'set-mode', account, 'free'])).toMatch(
      /expected prepaid or postpaid/,
    );
    expect(await refused(['prepaid', 'set-mode', account])).toMatch(/needs an account and/);
    expect(await refused(['prepaid', 'auto-recharge', account, '--amount', '5'])).toMatch(
      /needs --threshold/,
    );
    expect(await refused(['prepaid', 'auto-recharge', account, '--off', '--amount', '5'])).toMatch(
      /--off takes no/,
    );
    expect(
      await refused([
        'prepaid',
        'auto-recharge',
        account,
        '--threshold',
        'lots',
        '--amount',
        '5',
        '--monthly-max',
        '5',
      ]),
    ).toMatch(/--threshold/);
    expect(await refused(['prepaid', 'show', account, '--off'])).toMatch(/takes no options/);
    expect(await refused(['prepaid', 'top-up', account])).toMatch(/unknown sub-command/);
    // The service's own rules answer after the arguments: an unknown account is a 404.
    await expect(billing(['prepaid', 'show', 'acct_nosuchaccount'])).rejects.toMatchObject({
      status: 404,
    });
  });
});
