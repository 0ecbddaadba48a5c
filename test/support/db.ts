// A fresh database per test file, on whatever global-setup chose.
import { randomBytes } from 'node:crypto';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { expect, inject } from 'vitest';
import { createDatabase } from '../../src/database.ts';
import type { DatabaseHandle } from '../../src/database.ts';
import { createLogger } from '../../src/platform/log.ts';
import { migrateToLatest } from '../../src/platform/migrations.ts';

/**
 * Where test databases come from (global-setup.ts decides once per run). Both kinds carry an
 * already migrated starting point, so a test file does not pay for initdb and every migration:
 * a template database on PostgreSQL, a `dumpDataDir()` tarball on PGlite.
 */
export type TestDatabaseTarget =
  | { kind: 'postgres'; url: string; template: string }
  | { kind: 'pglite'; url: null; snapshot: string };

declare module 'vitest' {
  export interface ProvidedContext {
    database: TestDatabaseTarget;
  }
}

/**
 * The one way a test reaches the database of the run, so it also tells which files depend on
 * it: with TOLLHOUSE_TEST_DATABASE_LOG set, each call appends the calling test file's path
 * there. CI's first leg (PostgreSQL) writes that list and its second leg (PGlite) runs only
 * those files: a file that never asks runs identically on either, and once is enough.
 */
export function databaseTarget(): TestDatabaseTarget {
  const log = process.env.TOLLHOUSE_TEST_DATABASE_LOG;
  const file = expect.getState().testPath;
  // Once per file and worker: a file asks many times (every app, every runIf).
  if (log && file && !logged.has(file)) {
    logged.add(file);
    appendFileSync(log, `${path.relative(process.cwd(), file)}\n`);
  }
  return inject('database');
}
const logged = new Set<string>();

export const onRealPostgres = () => databaseTarget().kind === 'postgres';

/**
 * True in CI's second test leg (PGlite, TOLLHOUSE_TEST_SECOND_LEG=1, after the PostgreSQL
 * leg): a test of process plumbing (a command's stdout, stderr and exit status as a child
 * process) that already ran on the first leg skips, as its subject does not change with the
 * database. The command line's child processes on embedded PGlite are tested on every leg
 * (test/platform/cli-errors.test.ts, serve-process.test.ts, control-socket.test.ts).
 */
export const secondLeg = process.env.TOLLHOUSE_TEST_SECOND_LEG === '1';

export interface TestDatabase {
  /** postgres:// URL of this file's own database, or null on PGlite. */
  url: string | null;
  /**
   * Storage for child processes (the CLI, `serve`): this database's URL on PostgreSQL; on
   * PGlite a new data folder (TOLLHOUSE_DATA_DIR) holding the same starting point as `open()`.
   */
  forChildren(): Promise<ChildStorage>;
  /** Opens a handle (a pool, or the in-memory PGlite instance). */
  open(): Promise<DatabaseHandle>;
  /** Closes handles opened here and drops the database. */
  destroy(): Promise<void>;
}

export interface ChildStorage {
  /** DATABASE_URL, or TOLLHOUSE_DATA_DIR for PGlite. */
  env: Record<string, string>;
  /**
   * Opens the same storage in this process (to set up data). On PGlite, close it before a
   * child opens the folder: one process at a time.
   */
  open(): Promise<DatabaseHandle>;
}

export interface TestDatabaseOptions {
  /** Start with no tables at all (tests of the migrations themselves). Default: migrated. */
  empty?: boolean;
}

/**
 * A new database with every migration applied (or none, with `empty`). On PostgreSQL: a
 * `CREATE DATABASE … TEMPLATE` in the target server, dropped at the end, so test files running
 * in parallel never see each other's rows. On PGlite: one in-memory instance per `open()` —
 * PGlite is one process, one connection.
 */
export async function createTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const target = databaseTarget();
  const log = createLogger({ level: 'silent' });
  const handles: DatabaseHandle[] = [];
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-test-'));
  if (target.kind === 'pglite') {
    const initialData = options.empty ? undefined : await loadSnapshot(target.snapshot);
    return {
      url: null,
      async open() {
        const handle = await createDatabase({
          config: { url: null, poolMax: 1, dataDir },
          log,
          inMemory: true,
          initialData,
        });
        handles.push(handle);
        return handle;
      },
      async forChildren() {
        const folder = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-data-'));
        if (initialData !== undefined) await seedDataDir(path.join(folder, 'pglite'), initialData);
        return {
          env: { TOLLHOUSE_DATA_DIR: folder },
          open: () => createDatabase({ config: { url: null, poolMax: 1, dataDir: folder }, log }),
        };
      },
      async destroy() {
        await Promise.all(handles.map((h) => h.close()));
      },
    };
  }
  const name = `tollhouse_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(
    target.url,
    options.empty
      ? `create database ${name}`
      : `create database ${name} template ${target.template}`,
  );
  const url = withDatabase(target.url, name);
  const open = async () => {
    const handle = await createDatabase({ config: { url, poolMax: 5, dataDir }, log });
    handles.push(handle);
    return handle;
  };
  return {
    url,
    open,
    async forChildren() {
      return { env: { DATABASE_URL: url }, open };
    },
    async destroy() {
      await Promise.all(handles.map((h) => h.close()));
      await adminQuery(target.url, `drop database if exists ${name} with (force)`);
    },
  };
}

let snapshot: Promise<Blob> | null = null;
function loadSnapshot(file: string): Promise<Blob> {
  snapshot ??= readFile(file).then((bytes) => new Blob([bytes]));
  return snapshot;
}

/** Writes the snapshot into a PGlite data folder, as `tollhouse serve` would find it. */
async function seedDataDir(folder: string, initialData: Blob): Promise<void> {
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const pglite = new PGlite(folder, { loadDataDir: initialData });
  await pglite.waitReady;
  await pglite.close();
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export async function adminQuery(url: string, statement: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

let migratedFolder: Promise<string> | null = null;

/**
 * A new TOLLHOUSE_DATA_DIR whose embedded PGlite database is already migrated, as a folder that
 * `tollhouse serve` or a command has used before: for tests of the command line and of `serve`
 * whose subject is not the first start. Migrating a new folder costs several seconds of CPU
 * per process; a copy of one migrated folder (made once per test worker) costs milliseconds.
 * Independent of the run's database: these folders are always PGlite.
 */
export async function migratedDataDir(): Promise<string> {
  migratedFolder ??= (async () => {
    const folder = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-migrated-'));
    const handle = await createDatabase({
      config: { url: null, poolMax: 1, dataDir: folder },
      log: createLogger({ level: 'silent' }),
    });
    try {
      await migrateToLatest(handle.db);
    } finally {
      await handle.close();
    }
    return folder;
  })();
  const template = await migratedFolder;
  const folder = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-data-'));
  cpSync(path.join(template, 'pglite'), path.join(folder, 'pglite'), { recursive: true });
  return folder;
}
