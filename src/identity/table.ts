import type { ColumnType, Insertable, Selectable, Updateable } from 'kysely';

export interface AccountsTable {
  id: string;
  email: string;
  name: string | null;
  email_verified: ColumnType<boolean, boolean | undefined, boolean>;
  password_hash: string | null;
  status: ColumnType<
    'active' | 'disabled',
    'active' | 'disabled' | undefined,
    'active' | 'disabled'
  >;
  is_admin: ColumnType<boolean, boolean | undefined, boolean>;
  created_at: ColumnType<Date, never, never>;
  updated_at: ColumnType<Date, never, Date>;
}

export type AccountRow = Selectable<AccountsTable>;
export type NewAccountRow = Insertable<AccountsTable>;
export type AccountRowUpdate = Updateable<AccountsTable>;
