import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.destroy();
});

describe('database values', () => {
  it('returns int8 as bigint and numeric(78,0) as an exact string on every driver', async () => {
    const handle = await database.open();
    const result = await sql<{ small: unknown; large: unknown; wei: unknown; n: unknown }>`
      select 2::int8 as small, 9007199254740993::int8 as large,
             (2::numeric ^ 255)::numeric(78, 0) as wei, count(*) as n from (values (1), (2)) v(x)
    `.execute(handle.db);
    const row = result.rows[0]!;
    expect(row.small).toBe(2n);
    expect(row.large).toBe(9007199254740993n);
    expect(row.n).toBe(2n);
    expect(row.wei).toBe((2n ** 255n).toString());
  });
});
