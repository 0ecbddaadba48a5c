// `tollhouse usage …` as an operator runs it, in-process (the command line's own entry, as
// src/main.ts runs it); one test runs it as a child process, for the process boundary.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMeteringService } from '../../src/metering/index.ts';
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
  // The CLI opens the database an operator's `serve` would: this file's PostgreSQL database,
  // or on PGlite an embedded data folder.
  storage = await createTestDatabase();
  const children = await storage.forChildren();
  env = { ...children.env, LOG_LEVEL: 'error', TOLLHOUSE_SECRET: 'a'.repeat(64) };
  const database = await children.open();
  try {
    account = await createAccount(database.db);
    const service = createMeteringService({ database, log });
    const base = {
      source: 'cli-test',
      accountId: account,
      appId: null,
      keyId: null,
      clientId: null,
      endUserId: null,
      modelId: null,
      status: 200,
      latencyMs: 10,
      attributes: {},
    };
    await service.record([
      {
        ...base,
        eventId: '1',
        occurredAt: new Date('2026-10-05T10:00:00Z'),
        pipeline: 'llm',
        unit: 'tokens',
        quantity: 100n,
        feeWei: 5n,
      },
      {
        ...base,
        eventId: '2',
        occurredAt: new Date('2026-10-06T10:00:00Z'),
        pipeline: 'llm',
        unit: 'tokens',
        quantity: 50n,
        feeWei: 3n,
      },
      {
        ...base,
        eventId: '3',
        occurredAt: new Date('2026-10-06T11:00:00Z'),
        pipeline: 'upscale',
        unit: 'pixels',
        quantity: 4096n,
        feeWei: 10n ** 30n,
      },
      {
        ...base,
        eventId: '4',
        occurredAt: new Date('2026-08-01T00:00:00Z'),
        pipeline: 'llm',
        unit: 'tokens',
        quantity: 1n,
        feeWei: 1n,
      },
    ]);
  } finally {
    await database.close();
  }
});

describe('tollhouse usage', () => {
  it('shows totals by pipeline for a range', async () => {
    const result = await runCliInProcess(
      ['usage', 'show', '--from', '2026-10-01', '--to', '2026-11-01', '--by', 'pipeline'],
      env,
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    // The view GET /v1/usage answers: counts are numbers, amounts decimal strings, with totals.
    expect(JSON.parse(result.stdout)).toEqual({
      from: '2026-10-01T00:00:00.000Z',
      to: '2026-11-01T00:00:00.000Z',
      group_by: ['pipeline'],
      totals: {
        events: 3,
        failed_events: 0,
        fee_wei: (10n ** 30n + 8n).toString(),
        quantities: [
          { unit: 'pixels', quantity: '4096' },
          { unit: 'tokens', quantity: '150' },
        ],
      },
      rows: [
        {
          pipeline: 'llm',
          unit: 'tokens',
          events: 2,
          failed_events: 0,
          quantity: '150',
          fee_wei: '8',
        },
        {
          pipeline: 'upscale',
          unit: 'pixels',
          events: 1,
          failed_events: 0,
          quantity: '4096',
          fee_wei: (10n ** 30n).toString(),
        },
      ],
    });
  });

  it('prunes whole months of raw events', async () => {
    const result = await runCliInProcess(['usage', 'prune', '--before', '2026-10'], env);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ dropped: ['2026-08'] });
  });

  it('refuses bad arguments with status 2 and a message', async () => {
    const by = await runCliInProcess(['usage', 'show', '--by', 'colour'], env);
    expect(by.code).toBe(2);
    expect(by.stderr).toMatch(/^tollhouse usage: --by: unknown "colour"; use up to three of /);
    const prune = await runCliInProcess(['usage', 'prune', '--before', '2026-13'], env);
    expect(prune.code).toBe(2);
    expect(prune.stderr).toMatch(/--before "2026-13": not a month; expected YYYY-MM/);
    const missing = await runCliInProcess(['usage', 'prune'], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/prune needs --before YYYY-MM/);
    const range = await runCliInProcess(
      ['usage', 'show', '--from', '2026-10-02', '--to', '2026-10-01'],
      env,
    );
    expect(range.code).toBe(2);
    expect(range.stderr).toMatch(/--to 2026-10-01T00:00:00.000Z is not after --from/);
    const time = await runCliInProcess(['usage', 'show', '--from', 'yesterday'], env);
    expect(time.code).toBe(2);
    expect(time.stderr).toMatch(/--from "yesterday": expected a date or RFC 3339 time/);
  });

  it.skipIf(secondLeg)(
    'as a child process: JSON on stdout and exit 0, one line on stderr and exit 2',
    async () => {
      const shown = await runCli(
        ['usage', 'show', '--from', '2026-10-01', '--to', '2026-11-01'],
        env,
      );
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stderr).toBe('');
      expect(JSON.parse(shown.stdout)).toMatchObject({ totals: { events: 3 } });
      const by = await runCli(['usage', 'show', '--by', 'colour'], env);
      expect(by.code).toBe(2);
      expect(by.stderr).toMatch(/^tollhouse usage: --by: unknown "colour"/);
      expect(by.stdout).toBe('');
    },
  );
});
