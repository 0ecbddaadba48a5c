// A kill -9 in the middle of ingest loses no acknowledged event: every batch the server
// answered 200 is in the database afterwards, whatever was in flight when it died.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import { parseConfig } from '../../src/config.ts';
import { createDatabase } from '../../src/database.ts';
import { createLogger } from '../../src/platform/log.ts';
import { createTestDatabase, onRealPostgres } from '../support/db.ts';
import { issueKey } from '../support/credentials.ts';
import { freePort, serve, waitReady } from '../support/process.ts';
import { eventually } from '../support/eventually.ts';
import { newAccount } from '../support/fixtures.ts';

const log = createLogger({ level: 'silent' });

describe('ingest durability', () => {
  it('keeps every acknowledged event when the process is killed mid-ingest', async () => {
    const database = onRealPostgres() ? await createTestDatabase() : null;
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-kill-'));
    const env: Record<string, string> = {
      TOLLHOUSE_SECRET: randomBytes(32).toString('hex'),
      TOLLHOUSE_DATA_DIR: dataDir,
      ...(database ? { DATABASE_URL: database.url as string } : {}),
    };
    // Set up an account and a usage:write key in the database the child will serve.
    const setup = await createApp({ config: parseConfig(env), log });
    const t = { app: setup };
    const payer = await newAccount(t);
    const key = (await issueKey(t, payer, { scopes: ['usage:write'] })).secret;
    await setup.close();

    const proc = serve(await freePort(), { ...env, LOG_LEVEL: 'warn' });
    await waitReady(proc);
    const acknowledged: string[] = [];
    let stop = false;
    const writer = async (worker: number) => {
      for (let batch = 0; !stop; batch++) {
        const ids = Array.from({ length: 50 }, (_, i) => `w${worker}-b${batch}-e${i}`);
        try {
          const response = await fetch(`${proc.url}/v1/usage/events`, {
            method: 'POST',
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
            body: JSON.stringify(
              ids.map((id) => ({
                specversion: '1.0',
                id,
                source: 'kill-test',
                type: 'tollhouse.usage.v1',
                subject: payer,
                time: new Date().toISOString(),
                data: { pipeline: 'llm', unit: 'tokens', quantity: 1, fee_wei: '1' },
              })),
            ),
          });
          if (
            response.status === 200 &&
            ((await response.json()) as { accepted: number }).accepted === ids.length
          ) {
            acknowledged.push(...ids);
          }
        } catch {
          return; // the server is gone
        }
      }
    };
    const writers = [writer(1), writer(2), writer(3)];
    await eventually(() => acknowledged.length >= 1000, { intervalMs: 20 });
    proc.child.kill('SIGKILL');
    stop = true;
    await Promise.all(writers);
    await proc.exited;

    const handle = database
      ? await database.open()
      : await createDatabase({ config: { url: null, poolMax: 1, dataDir }, log });
    try {
      const stored = await sql<{
        event_id: string;
      }>`select event_id from usage_events where source = 'kill-test'`.execute(handle.db);
      const storedIds = new Set(stored.rows.map((r) => r.event_id));
      const lost = acknowledged.filter((id) => !storedIds.has(id));
      expect(lost).toEqual([]);
      expect(acknowledged.length).toBeGreaterThanOrEqual(1000);
    } finally {
      await handle.close();
      await database?.destroy();
    }
  });
});
