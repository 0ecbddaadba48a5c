// The console's "get started" page (issue #18 item 5): one row per account that dismissed it
// or finished its steps, so the console stops sending the account there and, once finished,
// drops it from the navigation. Frozen in time: imports nothing from the app.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('console_get_started')
    .addColumn('account_id', 'text', (col) =>
      col.primaryKey().references('accounts.id').onDelete('cascade'),
    )
    // "Not now": the console no longer opens the page by itself; the nav still offers it.
    .addColumn('dismissed_at', 'timestamptz')
    // Every step was done when the page was last shown: the nav stops offering it.
    .addColumn('completed_at', 'timestamptz')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('console_get_started').execute();
}
