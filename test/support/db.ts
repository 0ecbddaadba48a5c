// A fresh database per test file, on whatever global-setup chose.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import { createDatabase } from '../../src/database.ts';
import type { DatabaseHandle } from '../../src/database.ts';
import { createLogger } from '../../src/platform/log.ts';

export type TestDatabaseTarget = { kind: 'postgres'; url: string } | { kind: 'pglite'; url: null };

declare module 'vitest' {
  export interface ProvidedContext {
    database: TestDatabaseTarget;
  }
}

export function databaseTarget(): TestDatabaseTarget {
  return inject('database');
}

export const onRealPostgres = () => databaseTarget().kind === 'postgres';

export interface TestDatabase {
  /** postgres:// URL of this file's own database, or null on PGlite. */
  url: string | null;
  /** Opens a handle (a pool, or the in-memory PGlite instance). */
  open(): Promise<DatabaseHandle>;
  /** Closes handles opened here and drops the database. */
  destroy(): Promise<void>;
}

/**
 * A new, empty database. On PostgreSQL: a `CREATE DATABASE` in the target server, dropped at
 * the end, so test files running in parallel never see each other's rows. On PGlite: one
 * in-memory instance per `open()` — PGlite is one process, one connection.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const target = databaseTarget();
  const log = createLogger({ level: 'silent' });
  const handles: DatabaseHandle[] = [];
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-test-'));
  if (target.kind === 'pglite') {
    return {
      url: null,
      async open() {
        const handle = await createDatabase({
          config: { url: null, poolMax: 1, dataDir },
          log,
          inMemory: true,
        });
        handles.push(handle);
        return handle;
      },
      async destroy() {
        await Promise.all(handles.map((h) => h.close()));
      },
    };
  }
  const name = `tollhouse_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(target.url, `create database ${name}`);
  const url = withDatabase(target.url, name);
  return {
    url,
    async open() {
      const handle = await createDatabase({ config: { url, poolMax: 5, dataDir }, log });
      handles.push(handle);
      return handle;
    },
    async destroy() {
      await Promise.all(handles.map((h) => h.close()));
      await adminQuery(target.url, `drop database if exists ${name} with (force)`);
    },
  };
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function adminQuery(url: string, statement: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
