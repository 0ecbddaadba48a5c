// Frozen in time: migrations import nothing from the app.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

// Two-step operator transactions over the API and console: a preview stores what it showed
// (kind, beneficiary, amounts) under the sha256 of a short-lived confirmation token, and the
// execute call claims the row with a conditional UPDATE, so the same token never sends twice,
// on any replica. `funding_id` links the journal row the execution produced.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('signer_confirmations')
    .addColumn('token_hash', 'text', (col) => col.primaryKey())
    .addColumn('kind', 'text', (col) =>
      col.notNull().check(sql`kind in ('fund', 'unlock', 'cancel_unlock', 'withdraw')`),
    )
    .addColumn('actor', 'text', (col) => col.notNull())
    .addColumn('beneficiary', 'text', (col) => col.notNull())
    .addColumn('deposit_wei', sql`numeric(78,0)`, (col) => col.notNull().defaultTo(0))
    .addColumn('reserve_wei', sql`numeric(78,0)`, (col) => col.notNull().defaultTo(0))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull())
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    .addColumn('used_at', 'timestamptz')
    .addColumn('funding_id', 'text')
    .addColumn('error', 'text')
    .execute();
  await sql`create index signer_confirmations_expires_idx on signer_confirmations (expires_at)`.execute(
    db,
  );
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('signer_confirmations').execute();
}
