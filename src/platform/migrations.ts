// Schema migrations: ordered files in db/migrations, applied by `tollhouse migrate` and on
// `serve`. Replicas starting together are safe: the whole run holds a session-level advisory
// lock, so one applies the migrations while the others wait and then find nothing to do.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import type { Kysely, QueryExecutorProvider } from 'kysely';
import { FileMigrationProvider, Migrator } from 'kysely/migration';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../db/migrations', import.meta.url));

// Arbitrary constant shared by every tollhouse process: the advisory lock key for migrations
// (ASCII "tollmigr").
const MIGRATION_LOCK_KEY = 0x746f6c6c6d696772n;

export interface MigrationState {
  name: string;
  executedAt: Date | null;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations are untyped by design
function migrator(db: Kysely<any>): Migrator {
  return new Migrator({
    db,
    provider: new FileMigrationProvider({ fs, path, migrationFolder: MIGRATIONS_DIR }),
    // Each capability numbers its migrations in its own block (db/migrations/README.md), so a
    // new keys migration (0022) lands after a database has run 0070: it must still apply.
    allowUnorderedMigrations: true,
  });
}

/** Applies every pending migration; returns the names applied by this call. */
export async function migrateToLatest<DB>(db: Kysely<DB>): Promise<string[]> {
  return db.connection().execute(async (conn) => {
    await sql`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`.execute(conn);
    try {
      const { error, results = [] } = await migrator(conn).migrateToLatest();
      if (error !== undefined) {
        const failed = results.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
        throw new Error(
          `migration ${failed} failed: ${String((error as Error).message ?? error)}`,
          {
            cause: error,
          },
        );
      }
      return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
    } finally {
      await sql`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`.execute(conn);
    }
  });
}

export async function listMigrations<DB>(db: Kysely<DB>): Promise<MigrationState[]> {
  const all = await migrator(db).getMigrations();
  return all.map((m) => ({ name: m.name, executedAt: m.executedAt ?? null }));
}

/** The migration names this build ships, read once at start-up for readiness checks. */
export async function shippedMigrations(): Promise<string[]> {
  const files = await fs.readdir(MIGRATIONS_DIR);
  return files
    .filter((f) => /\.(ts|js)$/.test(f) && !f.endsWith('.d.ts'))
    .map((f) => f.replace(/\.(ts|js)$/, ''))
    .sort();
}

/** Names shipped but not applied; empty when the schema is current. */
export async function pendingMigrations(
  db: QueryExecutorProvider,
  shipped: readonly string[],
): Promise<string[]> {
  // kysely_migration is Kysely's own bookkeeping table (not part of `Database`).
  const result = await sql<{ name: string }>`select name from kysely_migration`
    .execute(db)
    .catch((error: unknown) => {
      // 42P01 undefined_table: nothing has been migrated yet.
      if ((error as { code?: string }).code === '42P01') return { rows: [] };
      throw error;
    });
  const applied = new Set(result.rows.map((r) => r.name));
  return shipped.filter((name) => !applied.has(name));
}
