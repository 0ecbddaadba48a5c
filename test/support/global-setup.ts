// Decides once, for the whole run, which PostgreSQL the tests use:
//   TEST_DATABASE_URL set          → that server (each test file gets its own database in it)
//   else a Docker engine answers   → a throwaway postgres:16 container (Testcontainers)
//   else                           → PGlite in memory (each test file gets its own instance)
// TOLLHOUSE_TEST_REQUIRE_POSTGRES=1 (npm run test:pg) refuses the PGlite fallback.
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import type { TestDatabaseTarget } from './db.ts';

const LOCAL_POSTGRES = 'postgres://postgres@127.0.0.1:5432/test';
// How long to wait for a Docker engine before falling back: a missing socket fails at once,
// a hung one must not stall the run.
const DOCKER_PROBE_MS = 5_000;

export default async function setup(project: TestProject) {
  const target = await chooseTarget();
  project.provide('database', target.target);
  process.stderr.write(`[tests] database: ${target.target.kind}${target.note}\n`);
  return target.teardown;
}

async function chooseTarget(): Promise<{
  target: TestDatabaseTarget;
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
