import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../platform/db.ts';
import type { AccountRow, NewAccountRow } from './table.ts';

export interface Account {
  id: string;
  email: string;
  name: string | null;
  emailVerified: boolean;
  status: 'active' | 'disabled';
  isAdmin: boolean;
  createdAt: Date;
}

export function toAccount(row: AccountRow): Account {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    emailVerified: row.email_verified,
    status: row.status,
    isAdmin: row.is_admin,
    createdAt: row.created_at,
  };
}

export async function insertAccount(
  db: Kysely<Database> | Transaction<Database>,
  row: NewAccountRow,
): Promise<AccountRow> {
  return db.insertInto('accounts').values(row).returningAll().executeTakeFirstOrThrow();
}

export async function findAccountById(
  db: Kysely<Database>,
  id: string,
): Promise<AccountRow | undefined> {
  return db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findAccountByEmail(
  db: Kysely<Database>,
  email: string,
): Promise<AccountRow | undefined> {
  return db
    .selectFrom('accounts')
    .selectAll()
    .where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()))
    .executeTakeFirst();
}
