// SQL for console_sessions and console_get_started. Rows stay rows here; session.ts opens the
// sealed tokens.
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import type { ConsoleGetStartedRow, ConsoleSessionRow, NewConsoleSessionRow } from './table.ts';

export async function insertConsoleSession(
  db: Kysely<Database>,
  row: NewConsoleSessionRow,
): Promise<void> {
  await db.insertInto('console_sessions').values(row).execute();
}

/** The live session with this id hash (an expired one is as good as absent), with whether
 * its account finished the "get started" steps (the navigation offers the page until then). */
export async function findConsoleSessionByIdHash(
  db: Kysely<Database>,
  idHash: string,
  now: Date,
): Promise<(ConsoleSessionRow & { get_started_completed_at: Date | null }) | undefined> {
  return db
    .selectFrom('console_sessions')
    .leftJoin(
      'console_get_started',
      'console_get_started.account_id',
      'console_sessions.account_id',
    )
    .selectAll('console_sessions')
    .select('console_get_started.completed_at as get_started_completed_at')
    .where('id_hash', '=', idHash)
    .where('expires_at', '>', now)
    .executeTakeFirst();
}

export async function findGetStarted(
  db: Kysely<Database>,
  accountId: string,
): Promise<ConsoleGetStartedRow | undefined> {
  return db
    .selectFrom('console_get_started')
    .selectAll()
    .where('account_id', '=', accountId)
    .executeTakeFirst();
}

/** Records that the account dismissed the page, or finished it (whichever `field` names). */
export async function markGetStarted(
  db: Kysely<Database>,
  accountId: string,
  field: 'dismissed_at' | 'completed_at',
  now: Date,
): Promise<void> {
  await db
    .insertInto('console_get_started')
    .values({ account_id: accountId, [field]: now })
    // The first time counts: a repeat neither moves the date nor fails.
    .onConflict((oc) =>
      oc.column('account_id').doUpdateSet((eb) => ({
        [field]: eb.fn.coalesce(`console_get_started.${field}`, eb.val(now)),
      })),
    )
    .execute();
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
