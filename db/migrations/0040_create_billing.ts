// Billing: plans and prices, subscriptions, the ledger (credits, grants, statement debits),
// spend caps, month closes, statements and their lines, Stripe sync state and webhook events.
// Frozen in time: migrations import nothing from the app.
//
// Money: wei are numeric(78,0); USD is integer micro-dollars (numeric(78,0) too, so a sum can
// never overflow). Prices are exact fractions: `amount` per `per_units` units.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table plans (
      id text primary key,
      name text not null,
      monthly_fee_usd_micros numeric(78, 0) not null check (monthly_fee_usd_micros >= 0),
      included_usd_micros numeric(78, 0) not null check (included_usd_micros >= 0),
      prepaid boolean not null default false,
      is_default boolean not null default false,
      created_at timestamptz not null default now()
    )`.execute(db);
  // At most one default plan (the plan of accounts without a subscription).
  await sql`create unique index plans_one_default_idx on plans (is_default) where is_default`.execute(
    db,
  );
  // '*' matches any pipeline / model / unit; the most specific match wins.
  await sql`
    create table plan_prices (
      plan_id text not null references plans (id) on delete cascade,
      pipeline text not null,
      model_id text not null,
      unit text not null,
      currency text not null check (currency in ('wei', 'usd_micros')),
      amount numeric(78, 0) not null check (amount >= 0),
      per_units numeric(78, 0) not null check (per_units > 0),
      primary key (plan_id, pipeline, model_id, unit)
    )`.execute(db);
  await sql`
    create table subscriptions (
      account_id text not null references accounts (id),
      effective_month date not null check (extract(day from effective_month) = 1),
      plan_id text not null references plans (id),
      created_at timestamptz not null default now(),
      primary key (account_id, effective_month)
    )`.execute(db);
  // Append-only: a balance is sum(amount_usd_micros). `reference` makes every write idempotent.
  await sql`
    create table ledger_entries (
      id bigserial primary key,
      account_id text not null references accounts (id),
      kind text not null check (kind in ('top_up', 'grant', 'statement', 'adjustment')),
      amount_usd_micros numeric(78, 0) not null,
      reference text not null unique,
      memo text,
      created_at timestamptz not null default now()
    )`.execute(db);
  await sql`create index ledger_entries_account_idx on ledger_entries (account_id, id)`.execute(db);
  // scope account: app_id = end_user_id = ''; app: end_user_id = ''; end_user: both set
  // ('*' as end_user_id = the cap of every end user of that app without their own cap).
  await sql`
    create table spend_caps (
      account_id text not null references accounts (id),
      app_id text not null default '',
      end_user_id text not null default '',
      monthly_cap_wei numeric(78, 0) not null check (monthly_cap_wei >= 0),
      updated_at timestamptz not null default now(),
      primary key (account_id, app_id, end_user_id)
    )`.execute(db);
  await sql`
    create table billing_closes (
      month date primary key,
      cutoff timestamptz not null,
      closed_at timestamptz not null default now(),
      statements integer not null
    )`.execute(db);
  await sql`
    create table statements (
      id text primary key,
      account_id text not null references accounts (id),
      month date not null,
      plan_id text references plans (id),
      closed_at timestamptz not null,
      eth_usd_answer numeric(78, 0) not null,
      eth_usd_decimals integer not null,
      rate_source text not null,
      rate_updated_at timestamptz not null,
      fee_wei numeric(78, 0) not null,
      usage_usd_micros numeric(78, 0) not null,
      monthly_fee_usd_micros numeric(78, 0) not null,
      included_usd_micros numeric(78, 0) not null,
      included_applied_usd_micros numeric(78, 0) not null,
      credits_applied_usd_micros numeric(78, 0) not null,
      total_usd_micros numeric(78, 0) not null,
      unique (account_id, month)
    )`.execute(db);
  await sql`create index statements_month_idx on statements (month, id)`.execute(db);
  await sql`
    create table statement_lines (
      statement_id text not null references statements (id),
      line integer not null,
      origin_month date not null,
      late boolean not null,
      pipeline text not null,
      model_id text not null,
      unit text not null,
      events bigint not null,
      quantity numeric(78, 0) not null,
      fee_wei numeric(78, 0) not null,
      price_currency text not null check (price_currency in ('wei', 'usd_micros', 'cost')),
      price_amount numeric(78, 0) not null,
      price_per_units numeric(78, 0) not null,
      charge_wei numeric(78, 0),
      charge_usd_micros numeric(78, 0) not null,
      primary key (statement_id, line)
    )`.execute(db);
  // Statements and their lines never change once written.
  await sql`
    create function billing_refuse_change() returns trigger language plpgsql as $$
    begin
      raise exception 'closed statements are immutable' using errcode = '55000';
    end $$`.execute(db);
  for (const table of ['statements', 'statement_lines']) {
    await sql`create trigger ${sql.raw(`${table}_immutable`)} before update or delete on ${sql.table(
      table,
    )} for each row execute function billing_refuse_change()`.execute(db);
  }
  await sql`
    create table stripe_customers (
      account_id text primary key references accounts (id),
      customer_id text not null unique,
      created_at timestamptz not null default now()
    )`.execute(db);
  await sql`
    create table stripe_sync (
      statement_id text primary key references statements (id),
      state text not null check (state in ('pending', 'invoiced', 'finalized', 'paid', 'payment_failed', 'skipped')),
      invoice_id text,
      items_pushed integer not null default 0,
      attempts integer not null default 0,
      next_attempt_at timestamptz not null default now(),
      last_error text,
      updated_at timestamptz not null default now()
    )`.execute(db);
  await sql`create index stripe_sync_due_idx on stripe_sync (next_attempt_at) where state = 'pending'`.execute(
    db,
  );
  await sql`
    create table stripe_events (
      id text primary key,
      type text not null,
      received_at timestamptz not null default now()
    )`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'stripe_events',
    'stripe_sync',
    'stripe_customers',
    'statement_lines',
    'statements',
    'billing_closes',
    'spend_caps',
    'ledger_entries',
    'subscriptions',
    'plan_prices',
    'plans',
  ]) {
    await sql`drop table ${sql.table(table)}`.execute(db);
  }
  await sql`drop function billing_refuse_change()`.execute(db);
}
