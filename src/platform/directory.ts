// Who owns what, as capabilities other than identity need to know it: keys check that an
// account exists and that an app is the key's account's, billing that an account exists,
// metering which account an app belongs to. Identity owns accounts and apps and implements this
// port over its tables (identity's createDirectory); the others receive it from app.ts, so no
// capability reads another's tables.
export interface Directory {
  accountExists(accountId: string): Promise<boolean>;
  /** The account that owns app `appId`, or null when there is no such app. */
  appOwner(appId: string): Promise<{ accountId: string } | null>;
}
