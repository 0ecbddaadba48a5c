// SQL for console_sessions. Rows stay rows here; session.ts opens the sealed tokens.
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import type { ConsoleSessionRow, NewConsoleSessionRow } from './table.ts';

export async function insertConsoleSession(
  db: Kysely<Database>,
  row: NewConsoleSessionRow,
): Promise<void> {
  await db.insertInto('console_sessions').values(row).execute();
}

/** The live session with this id hash (an expired one is as good as absent). */
export async function findConsoleSessionByIdHash(
  db: Kysely<Database>,
  idHash: string,
  now: Date,
): Promise<ConsoleSessionRow | undefined> {
  return db
    .selectFrom('console_sessions')
    .selectAll()
    .where('id_hash', '=', idHash)
    .where('expires_at', '>', now)
    .executeTakeFirst();
}

export async function deleteConsoleSessionByIdHash(
  db: Kysely<Database>,
  idHash: string,
): Promise<void> {
  await db.deleteFrom('console_sessions').where('id_hash', '=', idHash).execute();
}

export async function deleteExpiredConsoleSessions(
  db: Kysely<Database>,
  now: Date,
): Promise<number> {
  const result = await db
    .deleteFrom('console_sessions')
    .where('expires_at', '<=', now)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
