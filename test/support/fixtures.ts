// What tests need as context, made one way for every test file: accounts (a bare row, or one
// that can sign in), and a chain with the Livepeer contracts for a whole file.
import type { Kysely } from 'kysely';
import { afterAll, beforeAll } from 'vitest';
import { createAccountsService } from '../../src/identity/index.ts';
import type { Database } from '../../src/database.ts';
import { newId } from '../../src/platform/ids.ts';
import { deployLivepeer, startAnvil } from './anvil.ts';
import type { Anvil, Livepeer } from './anvil.ts';
import type { TestApp } from './app.ts';
import { createTestDatabase } from './db.ts';
import type { TestDatabase } from './db.ts';

/** The password of accounts made by accountWithPassword (sign-in pages, the console). */
export const PASSWORD = 'correct horse battery staple';

/** An account row, through identity's accounts service: for tests with a database and no app. */
export async function createAccount(
  db: Kysely<Database>,
  overrides: { id?: string; email?: string; isAdmin?: boolean } = {},
): Promise<string> {
  if (overrides.id !== undefined) {
    // A fixed id (an account named in config before the app starts, such as
    // GATEWAY_ANONYMOUS_ACCOUNT): the accounts service mints its own ids, so the row is written.
    await db
      .insertInto('accounts')
      .values({
        id: overrides.id,
        email: overrides.email ?? `${overrides.id}@example.test`,
        is_admin: overrides.isAdmin ?? false,
      })
      .execute();
    return overrides.id;
  }
  const account = await createAccountsService({ db }).create({
    email: overrides.email ?? `${newId('u')}@example.test`,
    password: null,
    isAdmin: overrides.isAdmin ?? false,
  });
  return account.id;
}

/** An account (no password) in a running test app's database; its id. */
export async function newAccount(t: Pick<TestApp, 'app'>, email?: string): Promise<string> {
  return createAccount(t.app.database.db, email === undefined ? {} : { email });
}

/** An account that signs in with PASSWORD, made through identity's service as sign-up does. */
export async function accountWithPassword(
  t: Pick<TestApp, 'app'>,
  email: string,
  options: { admin?: boolean; name?: string } = {},
) {
  return t.app.identity.accounts.create({
    email,
    password: PASSWORD,
    name: options.name ?? null,
    isAdmin: options.admin ?? false,
  });
}

export interface LivepeerChain {
  readonly anvil: Anvil;
  readonly livepeer: Livepeer;
  /** The file's own database (unless `{ database: false }`). */
  readonly database: TestDatabase;
}

/**
 * For the test file (or describe block) it is called in: anvil with the Livepeer contracts
 * deployed, and a database of its own, started before the first test and stopped after the
 * last. Call it before the file's own beforeAll/afterAll: after-hooks run in reverse, so
 * apps built on the chain are closed before the chain stops.
 */
export function useLivepeerChain(options: { database?: boolean } = {}): LivepeerChain {
  let anvil: Anvil | undefined;
  let livepeer: Livepeer | undefined;
  let database: TestDatabase | undefined;
  beforeAll(async () => {
    anvil = await startAnvil();
    livepeer = await deployLivepeer(anvil);
    if (options.database !== false) database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.destroy();
    await anvil?.stop();
  });
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is not started: read it inside a test`);
    return value;
  };
  return {
    get anvil() {
      return started(anvil, 'anvil');
    },
    get livepeer() {
      return started(livepeer, 'the Livepeer contracts');
    },
    get database() {
      return started(database, 'the database');
    },
  };
}
