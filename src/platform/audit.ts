// The audit log: who changed what, for every administrative write (key created, app secret
// rotated, credit granted, funding sent). Append-only; capabilities call `recordAudit` inside
// the transaction of the change so an audited change and its record commit together.
import type { ColumnType, Generated, Kysely, Selectable, Transaction } from 'kysely';

export interface AuditLogTable {
  id: Generated<bigint>;
  occurred_at: ColumnType<Date, never, never>;
  /** Who acted: `acct_…`, `key_…`, `cli` (operator at the command line), `system`. */
  actor: string;
  /** What happened, `<noun>.<verb>`: `key.create`, `app.rotate_secret`. */
  action: string;
  /** The object acted on, by id. */
  subject: string;
  request_id: string | null;
  /** Non-secret facts about the change. */
  details: ColumnType<Record<string, unknown>, string | undefined, never>;
}

export type AuditEntry = Selectable<AuditLogTable>;

/** What the audit functions need of a database: the application's `Database` has it. */
export interface AuditTables {
  audit_log: AuditLogTable;
}

export interface NewAuditEntry {
  actor: string;
  action: string;
  subject: string;
  requestId?: string | null;
  details?: Record<string, unknown>;
}

export async function recordAudit(
  trx: Transaction<AuditTables> | Kysely<AuditTables>,
  entry: NewAuditEntry,
): Promise<void> {
  await trx
    .insertInto('audit_log')
    .values({
      actor: entry.actor,
      action: entry.action,
      subject: entry.subject,
      request_id: entry.requestId ?? null,
      details: JSON.stringify(entry.details ?? {}),
    })
    .execute();
}

export async function findAuditBySubject(
  db: Kysely<AuditTables>,
  subject: string,
): Promise<AuditEntry[]> {
  return db
    .selectFrom('audit_log')
    .selectAll()
    .where('subject', '=', subject)
    .orderBy('id')
    .execute();
}
