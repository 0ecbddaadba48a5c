// Rows tests need as context (accounts …), created through the capabilities' own queries.
import type { Kysely } from 'kysely';
import { insertAccount } from '../../src/identity/index.ts';
import type { Database } from '../../src/database.ts';
import { newId } from '../../src/platform/ids.ts';

export async function createAccount(
  db: Kysely<Database>,
  overrides: { email?: string; isAdmin?: boolean } = {},
): Promise<string> {
  const id = newId('acct');
  await insertAccount(db, {
    id,
    email: overrides.email ?? `${id}@example.test`,
    name: null,
    password_hash: null,
    is_admin: overrides.isAdmin ?? false,
  });
  return id;
}
