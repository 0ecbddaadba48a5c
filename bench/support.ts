// A throwaway database for a benchmark: created in BENCH_DATABASE_URL's server (default the
// local PostgreSQL), opened with the app's own driver, dropped by `drop()`.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDatabase } from '../src/platform/db.ts';
import type { DatabaseHandle } from '../src/platform/db.ts';
import { createLogger } from '../src/platform/log.ts';
import type { Logger } from '../src/platform/log.ts';

export interface BenchDatabase {
  database: DatabaseHandle;
  /** postgres:// URL of the benchmark's own database. */
  url: string;
  log: Logger;
  /** Closes the handle and drops the database. */
  drop(): Promise<void>;
}

export async function createBenchDatabase(): Promise<BenchDatabase> {
  const server = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const name = `tollhouse_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`create database ${name}`);
  const url = new URL(server);
  url.pathname = `/${name}`;
  const log = createLogger({ level: 'warn', destination: process.stderr });
  const database = await createDatabase({
    config: { url: url.toString(), poolMax: 10, dataDir: '/tmp' },
    log,
  });
  return {
    database,
    url: url.toString(),
    log,
    async drop() {
      await database.close();
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}
