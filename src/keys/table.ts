import type { ColumnType, Insertable, Selectable, Updateable } from 'kysely';
import type { KeyKind } from './format.ts';

type Json<T> = ColumnType<T, string, string>;

export interface ApiKeysTable {
  id: string;
  account_id: string;
  app_id: string | null;
  kind: KeyKind;
  name: string;
  scopes: Json<string[]>;
  allowed_origins: ColumnType<string[] | null, string | null, string | null>;
  allowed_resources: ColumnType<string[] | null, string | null, string | null>;
  key_hash: ColumnType<string, string, never>;
  display_prefix: ColumnType<string, string, never>;
  expires_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  last_used_at: ColumnType<Date | null, never, Date>;
  revoked_at: ColumnType<Date | null, never, Date | null>;
  /** An operator's override of the front-door limits (platform/limits.ts); `{}`: none. */
  limits: ColumnType<unknown, string | undefined, string>;
  replaced_by: ColumnType<string | null, string | null | undefined, string | null>;
  created_by: ColumnType<string, string, never>;
  // Written from the app clock on insert (the rotation schedule compares it with the clock).
  created_at: ColumnType<Date, Date | undefined, never>;
  updated_at: ColumnType<Date, never, Date>;
}

export type ApiKeyRow = Selectable<ApiKeysTable>;
export type NewApiKeyRow = Insertable<ApiKeysTable>;
export type ApiKeyRowUpdate = Updateable<ApiKeysTable>;
