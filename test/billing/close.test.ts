// Month close: a randomized month of usage priced under two plans, recounted from the raw
// events to the wei; idempotent and concurrent closes; late events; immutability; exports.
import { createOutbox } from '../../src/notifications/outbox.ts';
import { randomInt } from 'node:crypto';
import { sql } from 'kysely';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATEMENT_COLUMNS, createBilling } from '../../src/billing/index.ts';
import { createDirectory } from '../../src/identity/index.ts';
import { createUsageReads } from '../../src/metering/index.ts';
import type { UsageEvent } from '../../src/metering/index.ts';
import { createLogger } from '../../src/platform/log.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { adminKey, bearer, call, issueKey } from '../support/credentials.ts';
import { onRealPostgres } from '../support/db.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { newAccount } from '../support/fixtures.ts';

const validate = createResponseValidator();
const RATE = { answer: 315025n, decimals: 2 }; // 3150.25 USD per ETH
let t: TestApp;
let admin: string;
const accounts: string[] = [];
let n = 0;

const ceil = (a: bigint, b: bigint) => (a + b - 1n) / b;
const usd = (wei: bigint) =>
  ceil(wei * RATE.answer * 1_000_000n, 10n ** 18n * 10n ** BigInt(RATE.decimals));

const PIPELINES = [
  ['text-to-image', 'sdxl', 'pixels'],
  ['text-to-image', 'flux', 'pixels'],
  ['llm', 'llama-3', 'tokens'],
  ['audio-to-text', null, 'milliseconds'],
] as const;

function event(accountId: string, occurredAt: Date): UsageEvent {
  const [pipeline, modelId, unit] = PIPELINES[randomInt(PIPELINES.length)]!;
  n++;
  return {
    source: 'test/close',
    eventId: `e${n}`,
    occurredAt,
    accountId,
    appId: null,
    keyId: null,
    clientId: null,
    endUserId: null,
    pipeline,
    modelId,
    unit,
    quantity: BigInt(randomInt(1, 2_000_000)),
    // Fees up to ~1e18 wei: sums overflow 2^63, so any int8 shortcut would show.
    feeWei: BigInt(randomInt(0, 2 ** 47)) * BigInt(randomInt(1, 10_000)),
    status: 200,
    latencyMs: 5,
    attributes: {},
  };
}

function randomTime(month: string): Date {
  const start = Date.parse(`${month}-01T00:00:00Z`);
  return new Date(start + randomInt(0, 28 * 24 * 3600) * 1000);
}

/** What a line must charge, computed here independently of src/billing/pricing.ts. */
function expectedCharge(
  plan: 'pro' | 'default',
  l: { pipeline: string; model_id: string; unit: string; quantity: bigint; fee_wei: bigint },
) {
  if (plan === 'pro' && l.pipeline === 'text-to-image' && l.model_id === 'sdxl') {
    return usd(ceil(l.quantity * 7n, 1000n));
  }
  if (plan === 'pro' && l.pipeline === 'llm') return l.quantity * 3n;
  return usd(l.fee_wei);
}

beforeAll(async () => {
  t = await startTestApp({ env: { BILLING_ETH_USD_RATE: '3150.25', BILLING_AUTO_CLOSE: 'false' } });
  admin = (await adminKey(t)).secret;
  for (let i = 0; i < 6; i++) accounts.push(await newAccount(t));
  const pro = await call(t, 'POST', '/v1/plans', {
    headers: bearer(admin),
    body: {
      id: 'pro',
      name: 'Pro',
      monthly_fee_usd_micros: '10000000',
      included_usd_micros: '2000000',
      prices: [
        {
          pipeline: 'text-to-image',
          model_id: 'sdxl',
          unit: 'pixels',
          currency: 'wei',
          amount: '7',
          per_units: '1000',
        },
        { pipeline: 'llm', unit: 'tokens', currency: 'usd_micros', amount: '3' },
      ],
    },
  });
  expect(pro.status).toBe(201);
  expect(validate('POST', '/v1/plans', 201, pro.body)).toBeNull();
  const basic = await call(t, 'POST', '/v1/plans', {
    headers: bearer(admin),
    body: { id: 'payg', name: 'Pay as you go', default: true },
  });
  expect(basic.status).toBe(201);
  // Past months cannot be chosen through the API (plan changes start now or later), so the
  // history of two accounts on "pro" since September is written as it would have been.
  for (const accountId of accounts.slice(0, 2)) {
    await t.app.database.db
      .insertInto('subscriptions')
      .values({ account_id: accountId, plan_id: 'pro', effective_month: '2026-09-01' })
      .execute();
  }
  // One account with prepaid credit, applied at close.
  await t.app.billing.service.addLedgerEntry(
    { actor: 'test', requestId: null },
    { accountId: accounts[0]!, kind: 'grant', amountUsdMicros: 5_000_000n, reference: 'welcome' },
  );
});
afterAll(async () => {
  await t?.close();
});

async function rawEvents() {
  const rows = await t.app.database.db.selectFrom('usage_events').selectAll().execute();
  return rows.map((r) => ({
    account_id: r.account_id,
    month: r.occurred_at.toISOString().slice(0, 7),
    recorded_at: r.recorded_at,
    pipeline: r.pipeline,
    model_id: r.model_id ?? '',
    unit: r.unit,
    quantity: BigInt(r.quantity),
    fee_wei: BigInt(r.fee_wei),
  }));
}

describe('month close', () => {
  it('bills a randomized month exactly: statement totals equal a recount of the raw events', async () => {
    const september = accounts.flatMap((a) =>
      Array.from({ length: randomInt(20, 120) }, () => event(a, randomTime('2026-09'))),
    );
    await t.app.metering.service.record(september);
    const closed = await t.app.billing.service.closeMonth('2026-09');
    expect(closed).toMatchObject({ month: '2026-09', closed: true, statements: accounts.length });

    // Late September events (recorded after the close) and October's usage.
    const late = accounts.slice(0, 3).map((a) => event(a, randomTime('2026-09')));
    const october = accounts.flatMap((a) =>
      Array.from({ length: randomInt(20, 120) }, () => event(a, randomTime('2026-10'))),
    );
    await t.app.metering.service.record([...late, ...october]);
    const second = await t.app.billing.service.closeMonth('2026-10');
    expect(second.closed).toBe(true);

    const raw = await rawEvents();
    const sepClose = (
      await t.app.database.db.selectFrom('billing_closes').selectAll().execute()
    ).find((c) => c.month.toISOString().startsWith('2026-09'))!;
    for (const month of ['2026-09', '2026-10']) {
      const list = await call(t, 'GET', `/v1/statements?month=${month}`, {
        headers: bearer(admin),
      });
      expect(list.status).toBe(200);
      expect(validate('GET', '/v1/statements', 200, list.body)).toBeNull();
      for (const summary of list.body.statements) {
        const shown = await call(t, 'GET', `/v1/statements/${summary.id}`, {
          headers: bearer(admin),
        });
        expect(validate('GET', '/v1/statements/{id}', 200, shown.body)).toBeNull();
        const s = shown.body;
        const billed = raw.filter(
          (e) =>
            e.account_id === s.account_id &&
            (month === '2026-09'
              ? e.month === '2026-09' && e.recorded_at <= sepClose.cutoff
              : e.month === '2026-10' ||
                (e.month === '2026-09' && e.recorded_at > sepClose.cutoff)),
        );
        expect(s.fee_wei).toBe(billed.reduce((sum, e) => sum + e.fee_wei, 0n).toString());
        const plan = accounts.indexOf(s.account_id) < 2 ? 'pro' : 'default';
        expect(s.plan_id).toBe(plan === 'pro' ? 'pro' : 'payg');
        // Group the raw events as lines and price each one independently.
        const groups = new Map<
          string,
          {
            pipeline: string;
            model_id: string;
            unit: string;
            quantity: bigint;
            fee_wei: bigint;
            events: number;
            late: boolean;
          }
        >();
        for (const e of billed) {
          const key = `${e.month}|${e.pipeline}|${e.model_id}|${e.unit}`;
          const g = groups.get(key) ?? {
            pipeline: e.pipeline,
            model_id: e.model_id,
            unit: e.unit,
            quantity: 0n,
            fee_wei: 0n,
            events: 0,
            late: e.month < month,
          };
          g.quantity += e.quantity;
          g.fee_wei += e.fee_wei;
          g.events++;
          groups.set(key, g);
        }
        expect(s.lines).toHaveLength(groups.size);
        let usage = 0n;
        for (const line of s.lines) {
          const g = groups.get(
            `${line.origin_month}|${line.pipeline}|${line.model_id}|${line.unit}`,
          )!;
          expect(line).toMatchObject({
            quantity: g.quantity.toString(),
            fee_wei: g.fee_wei.toString(),
            events: String(g.events),
            late: g.late,
          });
          expect(line.charge_usd_micros).toBe(expectedCharge(plan, g).toString());
          usage += expectedCharge(plan, g);
        }
        expect(s.usage_usd_micros).toBe(usage.toString());
        const fee = plan === 'pro' ? 10_000_000n : 0n;
        const included = plan === 'pro' ? (usage < 2_000_000n ? usage : 2_000_000n) : 0n;
        const due = fee + usage - included;
        expect(BigInt(s.total_usd_micros) + BigInt(s.credits_applied_usd_micros)).toBe(due);
        expect(s.eth_usd).toMatchObject({ answer: '315025', decimals: 2, source: 'fixed' });
      }
    }
    // Late events were marked and billed in October; nothing billed twice, nothing lost.
    const oct = await t.app.billing.service.statements({ month: '2026-10' }, 100);
    const sep = await t.app.billing.service.statements({ month: '2026-09' }, 100);
    const all = [...oct, ...sep].reduce((sum, s) => sum + s.feeWei, 0n);
    expect(all).toBe(raw.reduce((sum, e) => sum + e.fee_wei, 0n));
    const lateLines = (
      await Promise.all(oct.map((s) => t.app.billing.service.statement(s.id)))
    ).flatMap((s) => s.lines.filter((l) => l.late));
    expect(lateLines.reduce((sum, l) => sum + l.feeWei, 0n)).toBe(
      late.reduce((sum, e) => sum + e.feeWei, 0n),
    );
    // Credit applied once, in September, and debited from the ledger.
    const credited = sep.find((s) => s.accountId === accounts[0])!;
    expect(credited.creditsAppliedUsdMicros).toBe(5_000_000n);
    expect((await t.app.billing.service.balance(accounts[0]!)).balanceUsdMicros).toBe(0n);
  });

  it('is idempotent: closing a closed month changes nothing', async () => {
    const before = await t.app.database.db
      .selectFrom('statements')
      .selectAll()
      .orderBy('id')
      .execute();
    const again = await t.app.billing.service.closeMonth('2026-10');
    expect(again.closed).toBe(false);
    const after = await t.app.database.db
      .selectFrom('statements')
      .selectAll()
      .orderBy('id')
      .execute();
    expect(after).toEqual(before);
  });

  it('keeps statements immutable and closes months in order only', async () => {
    await expect(
      sql`update statements set total_usd_micros = 0`.execute(t.app.database.db),
    ).rejects.toThrow(/immutable/);
    await expect(sql`delete from statement_lines`.execute(t.app.database.db)).rejects.toThrow(
      /immutable/,
    );
    await expect(t.app.billing.service.closeMonth('2026-08')).rejects.toThrow(/close in order/);
    await expect(t.app.billing.service.closeMonth('2099-01')).rejects.toThrow(/not over yet/);
  });

  it('exports a month as RFC 4180 CSV with the documented columns, and a statement over HTTP', async () => {
    const { exportMonth } = await import('../../src/billing/index.ts');
    const chunks: Buffer[] = [];
    for await (const c of exportMonth(t.app.database.db, '2026-10', 'csv'))
      chunks.push(Buffer.from(c));
    const text = Buffer.concat(chunks).toString('utf8');
    expect(text.split('\r\n')[0]).toBe(STATEMENT_COLUMNS.join(','));
    const rows = parse<Record<string, string>>(text, { columns: true });
    const statements = await t.app.billing.service.statements({ month: '2026-10' }, 100);
    const lines = (
      await Promise.all(statements.map((s) => t.app.billing.service.statement(s.id)))
    ).flatMap((s) => s.lines);
    expect(rows).toHaveLength(lines.length);
    expect(rows.reduce((sum, r) => sum + BigInt(r.fee_wei!), 0n)).toBe(
      statements.reduce((sum, s) => sum + s.feeWei, 0n),
    );

    const one = statements.find((s) => s.accountId === accounts[3])!;
    const owner = (await issueKey(t, accounts[3]!, { scopes: ['billing:read'] })).secret;
    const csv = await fetch(`${t.url}/v1/statements/${one.id}/export?format=csv`, {
      headers: bearer(owner),
    });
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    const parsed = parse<Record<string, string>>(await csv.text(), { columns: true });
    expect(parsed.every((r) => r.statement_id === one.id && r.account_id === accounts[3])).toBe(
      true,
    );
    const jsonl = await fetch(`${t.url}/v1/statements/${one.id}/export?format=json`, {
      headers: bearer(owner),
    });
    expect(jsonl.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    const objects = (await jsonl.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(objects).toHaveLength(parsed.length);
    // Another account's statement does not exist for this key.
    const other = statements.find((s) => s.accountId === accounts[4])!;
    expect(
      (await call(t, 'GET', `/v1/statements/${other.id}/export`, { headers: bearer(owner) }))
        .status,
    ).toBe(404);
    expect(
      (await call(t, 'GET', `/v1/statements/${other.id}`, { headers: bearer(owner) })).status,
    ).toBe(404);
    const own = await call(t, 'GET', '/v1/statements', { headers: bearer(owner) });
    expect(
      own.body.statements.every((s: { account_id: string }) => s.account_id === accounts[3]),
    ).toBe(true);
    const bad = await call(t, 'GET', `/v1/statements/${one.id}/export?format=xml`, {
      headers: bearer(owner),
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('InvalidRequest');
  });

  it('exports the raw usage of a month as JSON Lines', async () => {
    const { exportUsage } = await import('../../src/billing/index.ts');
    let text = '';
    for await (const c of exportUsage(t.app.metering.reads, '2026-10')) text += String(c);
    const lines = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const raw = (await rawEvents()).filter((e) => e.month === '2026-10');
    expect(lines).toHaveLength(raw.length);
    expect(lines.reduce((sum, l) => sum + BigInt(l.fee_wei), 0n)).toBe(
      raw.reduce((s, e) => s + e.fee_wei, 0n),
    );
  });

  it('concurrent closes on separate pools produce one set of statements', async () => {
    const a = await newAccount(t);
    // November cannot close yet (the clock says it is November), so close it under a clock
    // set in December, from two billing instances with their own pools.
    await t.app.metering.service.record([event(a, randomTime('2026-11'))]);
    const handles = onRealPostgres()
      ? [await t.database.open(), await t.database.open()]
      : [t.app.database, t.app.database];
    const clock = () => new Date('2026-12-02T00:00:00Z');
    const log = createLogger({ level: 'silent' });
    const instances = handles.map((database) =>
      createBilling({
        database,
        usage: createUsageReads(database.db),
        directory: createDirectory(database.db),
        log,
        events: createOutbox({ clock: clock }),
        authenticator: t.app.authenticator,
        clock,
        config: {
          rates: { fixed: '3150.25', feedAddress: null, rpcUrl: null, maxAgeSeconds: 3600 },
          stripe: {
            secretKey: null,
            webhookSecret: null,
            apiBase: null,
            finalize: false,
            daysUntilDue: 30,
          },
          spendRefreshMs: 60_000,
          spendFullReloadMs: 600_000,
          closeAfterMs: null,
          jobIntervalMs: 600_000,
        },
      }),
    );
    const results = await Promise.all(instances.map((b) => b.service.closeMonth('2026-11')));
    expect(results.filter((r) => r.closed)).toHaveLength(1);
    expect(results[0]!.statements).toBe(results[1]!.statements);
    const rows = await t.app.database.db
      .selectFrom('statements')
      .select('id')
      .where('month', '=', '2026-11-01' as unknown as Date)
      .execute();
    expect(rows).toHaveLength(results[0]!.statements);
  });
});
