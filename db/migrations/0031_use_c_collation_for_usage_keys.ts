// Byte-order ("C") collation for the identifier columns that usage ingest indexes.
// Frozen in time: migrations import nothing from the app.
//
// Why: every ingested event inserts into three btree indexes over these columns and upserts a
// rollup whose primary key is six of them. Under a locale collation (the database default:
// en_US.UTF-8 in the postgres image, C.UTF-8 on Debian) each comparison goes through strcoll;
// under "C" it is a memcmp. bench/metering-ingest.ts measured the difference (BENCHMARKS.md,
// metering). These columns hold ids, names and unit keywords that are only ever compared for
// equality or grouped, so byte order loses nothing. Existing indexes are rebuilt in place;
// the table data is not rewritten.
//
// Equality between a "C" column and a column of another table with the default collation
// (a join) must name a collation; none of tollhouse's queries joins on these columns.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

const EVENT_COLUMNS = ['source', 'event_id', 'account_id'];
const ROLLUP_COLUMNS = ['account_id', 'app_id', 'end_user_id', 'pipeline', 'model_id', 'unit'];

async function setCollation(db: Kysely<any>, collation: 'C' | 'default'): Promise<void> {
  for (const column of EVENT_COLUMNS) {
    await sql`alter table usage_events alter column ${sql.ref(column)} type text collate ${sql.id(collation)}`.execute(
      db,
    );
  }
  for (const column of ROLLUP_COLUMNS) {
    await sql`alter table usage_rollups alter column ${sql.ref(column)} type text collate ${sql.id(collation)}`.execute(
      db,
    );
  }
}

export async function up(db: Kysely<any>): Promise<void> {
  await setCollation(db, 'C');
}

export async function down(db: Kysely<any>): Promise<void> {
  await setCollation(db, 'default');
}
