// Frozen in time: migrations import nothing from the app.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

// The signer's transaction journal. A row is written (status `intent`) before anything is
// signed, becomes `sent` with its hash, nonce and raw signed bytes before the transaction is
// broadcast, and ends `confirmed`, `failed` or `replaced`. After a crash the pending rows tell
// the next leader what may be in flight, so it never funds twice; the daily cap is summed from
// it across restarts and replicas.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('funding_transactions')
    .addColumn('id', 'text', (col) => col.primaryKey()) // ftx_…
    .addColumn('kind', 'text', (col) =>
      col.notNull().check(sql`kind in ('fund', 'unlock', 'cancel_unlock', 'withdraw')`),
    )
    // 'policy' for the automatic loop; manual operations record who asked.
    .addColumn('origin', 'text', (col) => col.notNull().check(sql`origin in ('policy', 'manual')`))
    .addColumn('status', 'text', (col) =>
      col.notNull().check(sql`status in ('intent', 'sent', 'confirmed', 'failed', 'replaced')`),
    )
    .addColumn('chain_id', 'int8', (col) => col.notNull())
    .addColumn('from_address', 'text', (col) => col.notNull())
    // The TicketBroker account credited (the signer itself, or SIGNER_FUND_FOR).
    .addColumn('beneficiary', 'text', (col) => col.notNull())
    .addColumn('deposit_wei', sql`numeric(78,0)`, (col) => col.notNull().defaultTo(0))
    .addColumn('reserve_wei', sql`numeric(78,0)`, (col) => col.notNull().defaultTo(0))
    .addColumn('value_wei', sql`numeric(78,0)`, (col) => col.notNull().defaultTo(0))
    // What the policy wanted to send when it decided; more than value_wei when a cap cut the
    // transaction short, which tells the next run (any replica) to keep refilling to target.
    .addColumn('wanted_wei', sql`numeric(78,0)`, (col) => col.notNull().defaultTo(0))
    .addColumn('nonce', 'int8')
    .addColumn('tx_hash', 'text')
    // The signed transaction (public once broadcast): rebroadcast if the node lost it.
    .addColumn('raw_tx', 'text')
    .addColumn('block_number', 'int8')
    .addColumn('error', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('sent_at', 'timestamptz')
    .addColumn('settled_at', 'timestamptz')
    .execute();
  await sql`create unique index funding_transactions_tx_hash_idx on funding_transactions (tx_hash) where tx_hash is not null`.execute(
    db,
  );
  // Recovery reads the unsettled rows; the daily cap sums the last 24 hours.
  await sql`create index funding_transactions_pending_idx on funding_transactions (created_at) where status in ('intent', 'sent')`.execute(
    db,
  );
  await sql`create index funding_transactions_created_idx on funding_transactions (created_at)`.execute(
    db,
  );
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('funding_transactions').execute();
}
