// Statements of prepaid months (issue #19): every statement records the billing mode that
// settled it and the balance movement of its account — opening balance, credits, debits and
// closing balance — and every ledger entry is settled in exactly one statement's month
// (`ledger_settlements`). A close settles the entries it can see, so an entry committed while a
// close runs lands in the next statement instead of in none or two, and a statement's figures
// reconcile to the wei: opening + credits + debits − credit applied = closing.
// Frozen in time: migrations import nothing from the app.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // Statements written before this migration keep null balances (they were never settled).
  await sql`
    alter table statements
      add column billing_mode text not null default 'postpaid'
        check (billing_mode in ('postpaid', 'prepaid')),
      add column opening_balance_usd_micros numeric(78, 0),
      add column credits_usd_micros numeric(78, 0),
      add column debits_usd_micros numeric(78, 0),
      add column closing_balance_usd_micros numeric(78, 0)`.execute(db);
  await sql`
    create table ledger_settlements (
      ledger_entry_id bigint primary key references ledger_entries (id),
      account_id text not null references accounts (id),
      month date not null check (extract(day from month) = 1)
    )`.execute(db);
  await sql`create index ledger_settlements_account_idx on ledger_settlements (account_id, month)`.execute(
    db,
  );
  await sql`create trigger ledger_settlements_immutable before update or delete on ledger_settlements
    for each row execute function billing_refuse_change()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table ledger_settlements`.execute(db);
  await sql`
    alter table statements
      drop column billing_mode,
      drop column opening_balance_usd_micros,
      drop column credits_usd_micros,
      drop column debits_usd_micros,
      drop column closing_balance_usd_micros`.execute(db);
}
