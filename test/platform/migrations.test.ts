import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  listMigrations,
  migrateToLatest,
  pendingMigrations,
  shippedMigrations,
} from '../../src/platform/migrations.ts';
import { json } from '../support/http.ts';
import { startTestApp } from '../support/app.ts';
import { createTestDatabase, onRealPostgres } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase({ empty: true });
});
afterAll(async () => {
  await database.destroy();
});

describe('migrations', () => {
  // Each capability numbers its migrations in its own block (see db/migrations/README.md), so
  // numbers increase but need not be contiguous.
  it('ship as zero-padded NNNN_verb_noun files with unique, increasing numbers', async () => {
    const names = await shippedMigrations();
    expect(names.length).toBeGreaterThan(0);
    const numbers = names.map((name) => {
      expect(name).toMatch(/^\d{4}_[a-z]+(_[a-z0-9]+)+$/);
      return Number(name.slice(0, 4));
    });
    expect(new Set(numbers).size).toBe(numbers.length);
    expect([...numbers].sort((a, b) => a - b)).toEqual(numbers);
  });

  it('apply every migration to a fresh database, then find nothing to do', async () => {
    const handle = await database.open();
    const shipped = await shippedMigrations();
    expect(await pendingMigrations(handle.db, shipped)).toEqual(shipped);
    expect(await migrateToLatest(handle.db)).toEqual(shipped);
    expect(await migrateToLatest(handle.db)).toEqual([]);
    expect(await pendingMigrations(handle.db, shipped)).toEqual([]);
    const states = await listMigrations(handle.db);
    expect(states.map((s) => s.name)).toEqual(shipped);
    expect(states.every((s) => s.executedAt instanceof Date)).toBe(true);
  });

  it('apply a migration numbered in an earlier block to a database that ran later ones', async () => {
    const fresh = await createTestDatabase({ empty: true });
    try {
      const handle = await fresh.open();
      await migrateToLatest(handle.db);
      // As a database upgraded from before 0022 was written: 0070 ran, 0022 did not.
      const name = '0022_index_api_keys_for_paging';
      const migration = (await import(`../../db/migrations/${name}.ts`)) as {
        down(db: unknown): Promise<void>;
      };
      await migration.down(handle.db);
      await sql`delete from kysely_migration where name = ${name}`.execute(handle.db);
      expect(await migrateToLatest(handle.db)).toEqual([name]);
      expect(await migrateToLatest(handle.db)).toEqual([]);
    } finally {
      await fresh.destroy();
    }
  });

  it.runIf(onRealPostgres())(
    'run once when several processes migrate the same database at the same moment',
    async () => {
      const fresh = await createTestDatabase({ empty: true });
      try {
        // Separate pools stand for separate replicas: each has its own connections.
        const handles = await Promise.all([1, 2, 3, 4].map(() => fresh.open()));
        const results = await Promise.all(handles.map((h) => migrateToLatest(h.db)));
        const shipped = await shippedMigrations();
        // Exactly one caller applied everything; the rest waited for the lock and found none.
        expect(results.filter((r) => r.length > 0)).toEqual([shipped]);
        const rows = await sql<{ n: bigint }>`select count(*) as n from kysely_migration`.execute(
          handles[0]!.db,
        );
        expect(rows.rows[0]!.n).toBe(BigInt(shipped.length));
      } finally {
        await fresh.destroy();
      }
    },
  );
});

describe('readiness', () => {
  it('turns 503 while a shipped migration is not applied', async () => {
    const t = await startTestApp();
    try {
      expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
      const db = t.app.database.db;
      const [last] = (await shippedMigrations()).slice(-1);
      await sql`delete from kysely_migration where name = ${last}`.execute(db);
      const response = await fetch(`${t.url}/readyz`);
      expect(response.status).toBe(503);
      expect(await json(response)).toEqual({
        status: 'unavailable',
        checks: { database: 'ok', migrations: 'failing' },
        message: `pending migrations: ${last}; run tollhouse migrate`,
      });
    } finally {
      await t.close();
    }
  });

  it('turns 503 when the database is unreachable', async () => {
    const t = await startTestApp();
    try {
      await t.app.database.close();
      const response = await fetch(`${t.url}/readyz`);
      expect(response.status).toBe(503);
      expect(await json(response)).toMatchObject({ checks: { database: 'failing' } });
    } finally {
      await t.server.close();
      await t.database.destroy().catch(() => undefined);
    }
  });
});
