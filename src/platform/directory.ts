// Who owns what, as capabilities other than identity need to know it: keys check that an
// account exists (and has confirmed its e-mail address before it gets credentials that spend)
// and that an app is the key's account's, billing that an account exists,
// metering which account an app belongs to. Identity owns accounts and apps and implements this
// port over its tables (identity's createDirectory); the others receive it from app.ts, so no
// capability reads another's tables.
export interface Directory {
  /** Account `accountId` as others may see it, or null when there is no such account. */
  account(accountId: string): Promise<{ emailVerified: boolean } | null>;
  /** The account that owns app `appId`, or null when there is no such app. */
  appOwner(appId: string): Promise<{ accountId: string } | null>;
  /** Where alerts for account `accountId` go: its address once confirmed, else null. */
  alertAddress(accountId: string): Promise<string | null>;
}
