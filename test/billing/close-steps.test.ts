// The month close's pricing steps on their own (src/billing/close.ts): who gets a statement
// and what each line and total comes to. The close as a whole — cutoff, late events, order of
// months, replicas — is close.test.ts, through the real app and database.
import { describe, expect, it } from 'vitest';
import { priceStatements, usageByAccount } from '../../src/billing/index.ts';
import type { Plan, Plans } from '../../src/billing/index.ts';
import type { BillableUsage } from '../../src/metering/index.ts';

const MONTH = '2026-10';
const CUTOFF = new Date('2026-11-01T00:05:00Z');
// $2,000 per ETH: 1 ETH is 2,000,000,000 micro-dollars.
const RATE = { answer: 200_000_000_000n, decimals: 8, source: 'fixed', updatedAt: CUTOFF };
const ETH = 10n ** 18n;

function plan(o: Partial<Plan> & { id: string }): Plan {
  return {
    name: o.id,
    monthlyFeeUsdMicros: 0n,
    includedUsdMicros: 0n,
    prepaid: false,
    isDefault: false,
    limits: {
      key: { rate: null, burst: null, concurrency: null },
      account: { rate: null, burst: null, concurrency: null },
      anonymous: { rate: null, burst: null, concurrency: null },
    },
    createdAt: CUTOFF,
    prices: [],
    ...o,
  };
}

function usage(accountId: string, o: Partial<BillableUsage> = {}): BillableUsage {
  return {
    accountId,
    originMonth: MONTH,
    pipeline: 'text-to-image',
    modelId: '',
    unit: 'pixels',
    events: 1n,
    quantity: 1_000n,
    feeWei: ETH / 1_000n,
    ...o,
  };
}

const pro = plan({
  id: 'pro',
  monthlyFeeUsdMicros: 10_000_000n,
  includedUsdMicros: 1_000_000n,
  prices: [
    {
      pipeline: 'text-to-image',
      modelId: '*',
      unit: 'pixels',
      currency: 'usd_micros',
      amount: 3n,
      perUnits: 1n,
    },
  ],
});
const free = plan({ id: 'free' });

function plans(effective: Record<string, string>, defaultPlan: Plan | null = null): Plans {
  return {
    byId: new Map([pro, free].map((p) => [p.id, p])),
    defaultPlan,
    effective: new Map(Object.entries(effective)),
  };
}

describe('usageByAccount', () => {
  it('gives a statement to every account with usage and to fee-paying subscribers, in id order', () => {
    const byAccount = usageByAccount(
      [usage('acct_c'), usage('acct_a'), usage('acct_c', { pipeline: 'llm' })],
      plans({ acct_b: 'pro', acct_d: 'free' }),
    );
    expect([...byAccount.keys()]).toEqual(['acct_a', 'acct_b', 'acct_c']);
    expect(byAccount.get('acct_b')).toEqual([]);
    expect(byAccount.get('acct_c')!.map((u) => u.pipeline)).toEqual(['text-to-image', 'llm']);
  });
});

describe('priceStatements', () => {
  it("prices lines by the account's plan, applies the included amount, then prepaid credit", () => {
    const [s] = priceStatements({
      month: MONTH,
      cutoff: CUTOFF,
      rate: RATE,
      byAccount: new Map([['acct_a', [usage('acct_a', { quantity: 1_000_000n })]]]),
      plans: plans({ acct_a: 'pro' }),
      settled: new Map([
        ['acct_a', { openingUsdMicros: 4_000_000n, creditsUsdMicros: 0n, debitsUsdMicros: 0n }],
      ]),
    });
    // 1,000,000 pixels at 3 µUSD each = $3; fee $10; $1 included; $4 of credit.
    expect(s!.lines).toEqual([
      expect.objectContaining({
        line: 1,
        late: false,
        priceCurrency: 'usd_micros',
        chargeWei: null,
        chargeUsdMicros: 3_000_000n,
      }),
    ]);
    expect(s!.statement).toMatchObject({
      accountId: 'acct_a',
      month: MONTH,
      planId: 'pro',
      closedAt: CUTOFF,
      usageUsdMicros: 3_000_000n,
      includedAppliedUsdMicros: 1_000_000n,
      creditsAppliedUsdMicros: 4_000_000n,
      totalUsdMicros: 8_000_000n,
      feeWei: ETH / 1_000n,
    });
    expect(s!.statement.id).toMatch(/^stmt_/);
  });

  it('bills at cost without a plan price, and marks usage of earlier months late', () => {
    const [s] = priceStatements({
      month: MONTH,
      cutoff: CUTOFF,
      rate: RATE,
      byAccount: new Map([['acct_a', [usage('acct_a', { originMonth: '2026-09' })]]]),
      plans: plans({}, free),
      settled: new Map(),
    });
    // 0.001 ETH at $2,000 = $2.
    expect(s!.lines[0]).toMatchObject({
      late: true,
      priceCurrency: 'cost',
      chargeWei: ETH / 1_000n,
      chargeUsdMicros: 2_000_000n,
    });
    expect(s!.statement).toMatchObject({ planId: 'free', totalUsdMicros: 2_000_000n });
  });

  it('settles a prepaid month from the balance in full, past zero, and leaves nothing due', () => {
    const settled = new Map([
      [
        'acct_a',
        {
          openingUsdMicros: 1_000_000n,
          creditsUsdMicros: 5_000_000n,
          debitsUsdMicros: -2_000_000n,
        },
      ],
      [
        'acct_b',
        {
          openingUsdMicros: 1_000_000n,
          creditsUsdMicros: 5_000_000n,
          debitsUsdMicros: -2_000_000n,
        },
      ],
    ]);
    const [a, b] = priceStatements({
      month: MONTH,
      cutoff: CUTOFF,
      rate: RATE,
      // $12 of usage at cost each; acct_a is prepaid, acct_b postpaid with the same balance.
      byAccount: new Map([
        ['acct_a', [usage('acct_a', { feeWei: (ETH * 6n) / 1_000n })]],
        ['acct_b', [usage('acct_b', { feeWei: (ETH * 6n) / 1_000n })]],
      ]),
      plans: plans({}, free),
      settled,
      prepaidModes: new Set(['acct_a']),
    });
    expect(a!.statement).toMatchObject({
      billingMode: 'prepaid',
      usageUsdMicros: 12_000_000n,
      creditsAppliedUsdMicros: 12_000_000n,
      totalUsdMicros: 0n,
      balance: {
        openingUsdMicros: 1_000_000n,
        creditsUsdMicros: 5_000_000n,
        debitsUsdMicros: -2_000_000n,
        closingUsdMicros: -8_000_000n,
      },
    });
    expect(b!.statement).toMatchObject({
      billingMode: 'postpaid',
      creditsAppliedUsdMicros: 4_000_000n,
      totalUsdMicros: 8_000_000n,
      balance: { closingUsdMicros: 0n },
    });
  });
});
