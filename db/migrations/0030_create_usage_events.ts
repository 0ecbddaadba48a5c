// Usage events (monthly range partitions) and their hourly rollups.
// Frozen in time: migrations import nothing from the app.
//
// Idempotency: (source, event_id, occurred_month) is unique. PostgreSQL requires a unique
// index on a partitioned table to contain the partition key, so the month is part of the
// key: a replay of an event (same id, same time) is always recognised; the same id sent
// again with a time in another month would count twice (documented in README, Metering).
// Partitions are created on demand by the recorder and dropped by `tollhouse usage prune`.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table usage_events (
      id bigserial not null,
      source text not null,
      event_id text not null,
      occurred_at timestamptz not null,
      occurred_month date not null,
      recorded_at timestamptz not null default now(),
      account_id text not null,
      app_id text,
      key_id text,
      client_id text,
      end_user_id text,
      pipeline text not null,
      model_id text,
      unit text not null,
      quantity numeric(78, 0) not null check (quantity >= 0),
      fee_wei numeric(78, 0) not null check (fee_wei >= 0),
      status integer,
      latency_ms integer,
      attributes jsonb not null default '{}'::jsonb,
      check (occurred_month = date_trunc('month', occurred_at at time zone 'UTC')::date),
      unique (source, event_id, occurred_month)
    ) partition by range (occurred_month)
  `.execute(db);
  await sql`create index usage_events_account_time_idx on usage_events (account_id, occurred_at, id)`.execute(
    db,
  );
  await sql`create index usage_events_time_idx on usage_events (occurred_at, id)`.execute(db);

  // One row per hour and dimension set. Absent dimensions are '' rather than null so the
  // primary key can be used by ON CONFLICT on every supported PostgreSQL version.
  await sql`
    create table usage_rollups (
      hour timestamptz not null,
      account_id text not null,
      app_id text not null default '',
      end_user_id text not null default '',
      pipeline text not null,
      model_id text not null default '',
      unit text not null,
      events bigint not null,
      failed_events bigint not null,
      quantity numeric(78, 0) not null,
      fee_wei numeric(78, 0) not null,
      primary key (account_id, hour, app_id, end_user_id, pipeline, model_id, unit)
    )
  `.execute(db);
  await sql`create index usage_rollups_hour_idx on usage_rollups (hour)`.execute(db);
  await sql`create index usage_rollups_app_hour_idx on usage_rollups (app_id, hour) where app_id <> ''`.execute(
    db,
  );
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table usage_rollups`.execute(db);
  await sql`drop table usage_events`.execute(db);
}
