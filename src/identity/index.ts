// Identity: accounts (people and, later, app users), OIDC apps and the OpenID provider.
// Other capabilities reach identity only through what is exported here.
export type { AccountsTable } from './table.ts';
export type { Account } from './queries.ts';
export { findAccountByEmail, findAccountById, insertAccount, toAccount } from './queries.ts';
