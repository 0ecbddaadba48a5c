// Rows tests need as context (accounts …), created through the capabilities' own services.
import type { Kysely } from 'kysely';
import { createAccountsService } from '../../src/identity/index.ts';
import type { Database } from '../../src/database.ts';
import { newId } from '../../src/platform/ids.ts';

export async function createAccount(
  db: Kysely<Database>,
  overrides: { email?: string; isAdmin?: boolean } = {},
): Promise<string> {
  const account = await createAccountsService({ db }).create({
    email: overrides.email ?? `${newId('u')}@example.test`,
    password: null,
    isAdmin: overrides.isAdmin ?? false,
  });
  return account.id;
}
