// The console's table (db/migrations/0070_create_console_sessions.ts).
import type { ColumnType, Insertable, Selectable } from 'kysely';

export interface ConsoleSessionsTable {
  id_hash: string;
  account_id: string;
  email: string;
  scopes: string;
  access_token_sealed: string;
  refresh_token_sealed: string | null;
  csrf_token: string;
  created_at: ColumnType<Date, never, never>;
  expires_at: Date;
}

export type ConsoleSessionRow = Selectable<ConsoleSessionsTable>;
export type NewConsoleSessionRow = Insertable<ConsoleSessionsTable>;

export interface ConsoleGetStartedTable {
  account_id: string;
  dismissed_at: Date | null;
  completed_at: Date | null;
}

export type ConsoleGetStartedRow = Selectable<ConsoleGetStartedTable>;
