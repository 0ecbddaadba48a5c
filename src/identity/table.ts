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

type Json<T> = ColumnType<T, string, string>;
/** A jsonb column the schema defaults (to `[]`): inserting may leave it out. */
type JsonWithDefault<T> = ColumnType<T, string | undefined, string>;

export interface AppsTable {
  id: string;
  client_id: string;
  owner_account_id: string;
  name: string;
  kind: 'public' | 'web' | 'machine';
  redirect_uris: JsonWithDefault<string[]>;
  post_logout_redirect_uris: JsonWithDefault<string[]>;
  allowed_origins: JsonWithDefault<string[]>;
  grant_types: Json<string[]>;
  scopes: Json<string[]>;
  status: ColumnType<
    'active' | 'disabled',
    'active' | 'disabled' | undefined,
    'active' | 'disabled'
  >;
  secret_hash: string | null;
  previous_secret_hash: string | null;
  previous_secret_expires_at: Date | null;
  created_at: ColumnType<Date, never, never>;
  updated_at: ColumnType<Date, never, Date>;
}

export type AppRow = Selectable<AppsTable>;
export type NewAppRow = Insertable<AppsTable>;
export type AppRowUpdate = Updateable<AppsTable>;

export interface AppUsersTable {
  id: string;
  app_id: string;
  external_id: string;
  status: ColumnType<
    'active' | 'disabled',
    'active' | 'disabled' | undefined,
    'active' | 'disabled'
  >;
  created_at: ColumnType<Date, never, never>;
  updated_at: ColumnType<Date, never, Date>;
}

export type AppUserRow = Selectable<AppUsersTable>;

export interface OidcPayloadsTable {
  model: string;
  id: string;
  payload: Json<Record<string, unknown>>;
  grant_id: string | null;
  user_code: string | null;
  uid: string | null;
  expires_at: Date | null;
  consumed_at: Date | null;
}

export interface SigningKeysTable {
  kid: string;
  alg: string;
  public_jwk: Json<Record<string, unknown>>;
  private_jwk_sealed: string;
  status: 'next' | 'active' | 'retired';
  retire_after: Date | null;
  created_at: ColumnType<Date, never, never>;
}

export type SigningKeyRow = Selectable<SigningKeysTable>;

/** Single-use e-mailed tokens (issue #18): only their keyed hash is stored. */
export interface AccountTokensTable {
  token_hash: string;
  purpose: AccountTokenPurpose;
  account_id: string | null;
  email: string;
  created_by: string;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
}

export type AccountTokenPurpose = 'verify_email' | 'reset_password' | 'invitation' | 'change_email';
export type AccountTokenRow = Selectable<AccountTokensTable>;
export type NewAccountTokenRow = Insertable<AccountTokensTable>;

/** Second factors (issue #18 item 4). */
export interface AccountTotpTable {
  account_id: string;
  secret_sealed: string;
  confirmed_at: Date | null;
  last_step: bigint | null;
  created_at: Date;
}

export interface AccountRecoveryCodesTable {
  code_hash: string;
  account_id: string;
  created_at: Date;
  used_at: Date | null;
}

export interface AccountPasskeysTable {
  id: string;
  account_id: string;
  credential_id: string;
  public_key: string;
  sign_count: bigint;
  transports: JsonWithDefault<string[]>;
  device_type: 'singleDevice' | 'multiDevice';
  backed_up: boolean;
  name: string;
  created_at: Date;
  last_used_at: Date | null;
}

export type AccountPasskeyRow = Selectable<AccountPasskeysTable>;

export interface SecondFactorStatesTable {
  key_hash: string;
  account_id: string | null;
  amr: JsonWithDefault<string[]>;
  challenge: string | null;
  expires_at: Date;
}
