// Decides once, for the whole run, which PostgreSQL the tests use:
//   TEST_DATABASE_URL set          → that server (each test file gets its own database in it)
//   else a Docker engine answers   → a throwaway postgres:16 container (Testcontainers)
//   else                           → PGlite in memory (each test file gets its own instance)
// TOLLHOUSE_TEST_REQUIRE_POSTGRES=1 (npm run test:pg) refuses the PGlite fallback.
//
// It also migrates one database for the whole run (a template database on PostgreSQL, a
// snapshot tarball on PGlite): every test file starts from a copy instead of running initdb
// and every migration itself — most of a PGlite file's start-up time.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { createDatabase } from '../../src/database.ts';
import { createLogger } from '../../src/platform/log.ts';
import { migrateToLatest } from '../../src/platform/migrations.ts';
import { adminQuery, withDatabase } from './db.ts';
import type { TestDatabaseTarget } from './db.ts';

const LOCAL_POSTGRES = 'postgres://postgres@127.0.0.1:5432/test';
// How long to wait for a Docker engine before falling back: a missing socket fails at once,
// a hung one must not stall the run.
const DOCKER_PROBE_MS = 5_000;

type Chosen = { kind: 'postgres'; url: string } | { kind: 'pglite'; url: null };

export default async function setup(project: TestProject) {
  const chosen = await chooseTarget();
  const started = Date.now();
  const prepared = await prepare(chosen.target);
  project.provide('database', prepared.target);
  process.stderr.write(
    `[tests] database: ${chosen.target.kind}${chosen.note}; migrated starting point in ${Date.now() - started} ms\n`,
  );
  return async () => {
    await prepared.teardown();
    await chosen.teardown?.();
  };
}

async function prepare(
  chosen: Chosen,
): Promise<{ target: TestDatabaseTarget; teardown: () => Promise<void> }> {
  const log = createLogger({ level: 'silent' });
  if (chosen.kind === 'postgres') {
    const template = `tollhouse_template_${randomBytes(6).toString('hex')}`;
    await adminQuery(chosen.url, `create database ${template}`);
    const handle = await createDatabase({
      config: { url: withDatabase(chosen.url, template), poolMax: 1, dataDir: os.tmpdir() },
      log,
    });
    try {
      await migrateToLatest(handle.db);
    } finally {
      await handle.close();
    }
    return {
      target: { kind: 'postgres', url: chosen.url, template },
      teardown: () => adminQuery(chosen.url, `drop database if exists ${template} with (force)`),
    };
  }
  const folder = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-snapshot-'));
  const handle = await createDatabase({
    config: { url: null, poolMax: 1, dataDir: folder },
    log,
    inMemory: true,
  });
  let snapshot: string;
  try {
    await migrateToLatest(handle.db);
    if (handle.snapshot === undefined) throw new Error('the PGlite handle cannot take a snapshot');
    snapshot = path.join(folder, 'migrated.tar');
    writeFileSync(snapshot, Buffer.from(await (await handle.snapshot()).arrayBuffer()));
  } finally {
    await handle.close();
  }
  return {
    target: { kind: 'pglite', url: null, snapshot },
    teardown: async () => rmSync(folder, { recursive: true, force: true }),
  };
}

async function chooseTarget(): Promise<{
  target: Chosen;
  note: string;
  teardown?: () => Promise<void>;
}> {
  const required = process.env.TOLLHOUSE_TEST_REQUIRE_POSTGRES === '1';
  const url = process.env.TEST_DATABASE_URL || (required ? LOCAL_POSTGRES : '');
  if (url) {
    await assertReachable(url);
    return { target: { kind: 'postgres', url }, note: ` (${redact(url)})` };
  }
  const container = await startContainer();
  if (container) return container;
  if (required) throw new Error('npm run test:pg needs PostgreSQL: set TEST_DATABASE_URL');
  return { target: { kind: 'pglite', url: null }, note: ' (no TEST_DATABASE_URL, no Docker)' };
}

async function assertReachable(url: string) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    await client.query('select 1');
  } catch (error) {
    throw new Error(`TEST_DATABASE_URL ${redact(url)} is not reachable: ${String(error)}`, {
      cause: error,
    });
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function startContainer() {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      getContainerRuntimeClient(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('Docker probe timed out')), DOCKER_PROBE_MS);
      }),
    ]).finally(() => clearTimeout(timer));
  } catch {
    return null; // No Docker engine: skip Testcontainers cleanly.
  }
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const container = await new PostgreSqlContainer('postgres:16-alpine').start();
  return {
    target: { kind: 'postgres' as const, url: container.getConnectionUri() },
    note: ' (Testcontainers)',
    teardown: async () => {
      await container.stop();
    },
  };
}

function redact(url: string) {
  return url.replace(/:\/\/([^:@/]+):[^@/]+@/, '://$1:***@');
}
