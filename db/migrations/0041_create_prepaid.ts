// Prepaid credit (issue #19): a billing mode and auto-recharge settings per account, the
// Stripe payments that credited a balance (so a refund or a dispute finds its account), and
// one row per auto-recharge window (its key is the Stripe Idempotency-Key, so two replicas or
// a crashed one never charge a window twice). Refunds, disputes and recharges join the
// append-only ledger's kinds. Frozen in time: migrations import nothing from the app.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table ledger_entries drop constraint ledger_entries_kind_check`.execute(db);
  await sql`alter table ledger_entries add constraint ledger_entries_kind_check check (kind in
    ('top_up', 'grant', 'statement', 'adjustment', 'recharge', 'refund', 'dispute'))`.execute(db);
  await sql`
    create table billing_accounts (
      account_id text primary key references accounts (id),
      mode text not null default 'postpaid' check (mode in ('postpaid', 'prepaid')),
      auto_recharge boolean not null default false,
      recharge_threshold_usd_micros numeric(78, 0) not null default 0
        check (recharge_threshold_usd_micros >= 0),
      recharge_amount_usd_micros numeric(78, 0) not null default 0
        check (recharge_amount_usd_micros >= 0),
      recharge_monthly_max_usd_micros numeric(78, 0) not null default 0
        check (recharge_monthly_max_usd_micros >= 0),
      payment_method_id text,
      updated_at timestamptz not null default now()
    )`.execute(db);
  await sql`
    create table stripe_payments (
      payment_intent_id text primary key,
      account_id text not null references accounts (id),
      source text not null check (source in ('checkout', 'recharge')),
      amount_usd_micros numeric(78, 0) not null,
      created_at timestamptz not null default now()
    )`.execute(db);
  await sql`create index stripe_payments_account_idx on stripe_payments (account_id, created_at)`.execute(
    db,
  );
  await sql`
    create table recharges (
      window_key text primary key,
      account_id text not null references accounts (id),
      month date not null,
      amount_usd_micros numeric(78, 0) not null check (amount_usd_micros > 0),
      state text not null check (state in ('pending', 'succeeded', 'failed')),
      payment_intent_id text,
      attempts integer not null default 0,
      next_attempt_at timestamptz not null,
      last_error text,
      created_at timestamptz not null,
      updated_at timestamptz not null
    )`.execute(db);
  await sql`create index recharges_due_idx on recharges (next_attempt_at) where state = 'pending'`.execute(
    db,
  );
  await sql`create index recharges_account_idx on recharges (account_id, month)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['recharges', 'stripe_payments', 'billing_accounts']) {
    await sql`drop table ${sql.table(table)}`.execute(db);
  }
  await sql`alter table ledger_entries drop constraint ledger_entries_kind_check`.execute(db);
  await sql`alter table ledger_entries add constraint ledger_entries_kind_check check (kind in
    ('top_up', 'grant', 'statement', 'adjustment'))`.execute(db);
}
