// Two replicas (separate processes, one PostgreSQL) closing the same month at once: exactly
// one closes it, the other finds it closed; one statement per account.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_SECRET, startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { onRealPostgres } from '../support/db.ts';
import { runCli } from '../support/process.ts';
import { newAccount } from '../support/fixtures.ts';

let t: TestApp;
const accounts: string[] = [];

beforeAll(async () => {
  if (!onRealPostgres()) return;
  t = await startTestApp({ env: { BILLING_ETH_USD_RATE: '3000', BILLING_AUTO_CLOSE: 'false' } });
  for (let i = 0; i < 20; i++) accounts.push(await newAccount(t));
  await t.app.metering.service.record(
    accounts.flatMap((accountId, i) =>
      Array.from({ length: 50 }, (_, j) => ({
        source: 'test/replicas',
        eventId: `${i}-${j}`,
        occurredAt: new Date(Date.UTC(2026, 8, 1 + (j % 28), j % 24)),
        accountId,
        appId: null,
        keyId: null,
        clientId: null,
        endUserId: null,
        pipeline: 'llm',
        modelId: 'm',
        unit: 'tokens' as const,
        quantity: BigInt(j + 1),
        feeWei: BigInt(j + 1) * 10n ** 12n,
        status: 200,
        latencyMs: 1,
        attributes: {},
      })),
    ),
  );
});
afterAll(async () => {
  await t?.close();
});

describe('month close across replicas', () => {
  it.runIf(onRealPostgres())(
    'two processes closing one month produce one set of statements',
    async () => {
      const env = {
        DATABASE_URL: t.database.url!,
        // The processes share the test app's database, so they must share its secret.
        TOLLHOUSE_SECRET: TEST_SECRET,
        BILLING_ETH_USD_RATE: '3000',
        BILLING_AUTO_CLOSE: 'false',
        LOG_LEVEL: 'error',
      };
      const [a, b] = await Promise.all([
        runCli(['billing', 'close', '--month', '2026-09'], env),
        runCli(['billing', 'close', '--month', '2026-09'], env),
      ]);
      expect(a.code, a.stderr).toBe(0);
      expect(b.code, b.stderr).toBe(0);
      const results = [JSON.parse(a.stdout), JSON.parse(b.stdout)];
      expect(results.map((r) => r.closed).sort()).toEqual([false, true]);
      expect(results.map((r) => r.statements)).toEqual([20, 20]);
      const statements = await t.app.billing.service.statements({ month: '2026-09' }, 100);
      expect(statements).toHaveLength(20);
      expect(new Set(statements.map((s) => s.accountId)).size).toBe(20);
      // Every event billed once: 20 accounts × Σ(1..50) × 1e12 wei.
      expect(statements.reduce((sum, s) => sum + s.feeWei, 0n)).toBe(20n * 1275n * 10n ** 12n);
    },
    120_000,
  );
});
