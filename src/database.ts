// The application's database: every table, named once, from the `table.ts` of the capability
// that owns it. It lives here, beside app.ts, rather than in platform/: platform is plumbing that
// knows no capability, and a `Database` type there would make every capability's queries import
// (through platform) every other capability's tables — an import cycle at the type level.
//
// Imports here reach straight into `table.ts` files (not the capabilities' index.ts) for the
// same reason: table.ts imports nothing of the app, so capability → database.ts → table.ts
// never closes a loop. test/platform/schema-drift.test.ts compares this type with the
// migrated schema.
import type {
  BillingClosesTable,
  LedgerSettlementsTable,
  LedgerEntriesTable,
  PlanPricesTable,
  PlansTable,
  SpendCapsTable,
  StatementLinesTable,
  StatementsTable,
  StripeCustomersTable,
  StripeEventsTable,
  StripeSyncTable,
  SubscriptionsTable,
  BillingAccountsTable,
  RechargesTable,
  StripePaymentsTable,
} from './billing/table.ts';
import type { ConsoleGetStartedTable, ConsoleSessionsTable } from './console/table.ts';
import type { ReplicasTable, StreamsTable } from './gateway/table.ts';
import type {
  AccountPasskeysTable,
  AccountRecoveryCodesTable,
  AccountTokensTable,
  AccountTotpTable,
  AccountsTable,
  AppUsersTable,
  AppsTable,
  OidcPayloadsTable,
  SecondFactorStatesTable,
  SigningKeysTable,
} from './identity/table.ts';
import type { AccountIdentitiesTable, UpstreamFlowsTable } from './identity/upstream-table.ts';
import type { ApiKeysTable } from './keys/table.ts';
import type { UsageEventsTable, UsageRollupsTable } from './metering/table.ts';
import type {
  AlertEmailOptOutsTable,
  OutboundEventsTable,
  WebhookDeliveriesTable,
  WebhookEndpointsTable,
} from './notifications/table.ts';
import type { AuditLogTable } from './platform/audit.ts';
import { openDatabase } from './platform/db.ts';
import type { DatabaseHandle as PlatformDatabaseHandle, DatabaseOptions } from './platform/db.ts';
import type { SignerSessionsTable } from './signer/remote/table.ts';
import type { FundingTransactionsTable, SignerConfirmationsTable } from './signer/table.ts';

/** Every table tollhouse owns, keyed by its SQL name. */
export interface Database {
  // platform
  audit_log: AuditLogTable;
  // identity
  accounts: AccountsTable;
  account_tokens: AccountTokensTable;
  account_totp: AccountTotpTable;
  account_recovery_codes: AccountRecoveryCodesTable;
  account_passkeys: AccountPasskeysTable;
  second_factor_states: SecondFactorStatesTable;
  apps: AppsTable;
  app_users: AppUsersTable;
  oidc_payloads: OidcPayloadsTable;
  signing_keys: SigningKeysTable;
  account_identities: AccountIdentitiesTable;
  upstream_flows: UpstreamFlowsTable;
  // keys
  api_keys: ApiKeysTable;
  // metering
  usage_events: UsageEventsTable;
  usage_rollups: UsageRollupsTable;
  // billing
  plans: PlansTable;
  plan_prices: PlanPricesTable;
  subscriptions: SubscriptionsTable;
  ledger_entries: LedgerEntriesTable;
  ledger_settlements: LedgerSettlementsTable;
  spend_caps: SpendCapsTable;
  billing_closes: BillingClosesTable;
  statements: StatementsTable;
  statement_lines: StatementLinesTable;
  stripe_customers: StripeCustomersTable;
  stripe_sync: StripeSyncTable;
  stripe_events: StripeEventsTable;
  billing_accounts: BillingAccountsTable;
  stripe_payments: StripePaymentsTable;
  recharges: RechargesTable;
  // signer
  funding_transactions: FundingTransactionsTable;
  signer_sessions: SignerSessionsTable;
  signer_confirmations: SignerConfirmationsTable;
  // gateway
  streams: StreamsTable;
  replicas: ReplicasTable;
  // console
  console_sessions: ConsoleSessionsTable;
  console_get_started: ConsoleGetStartedTable;
  // notifications
  outbound_events: OutboundEventsTable;
  webhook_endpoints: WebhookEndpointsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  alert_email_opt_outs: AlertEmailOptOutsTable;
}

/** The application's open database (see platform/db.ts for the drivers). */
export type DatabaseHandle = PlatformDatabaseHandle<Database>;

export type { DatabaseOptions, NotificationHandler } from './platform/db.ts';
export { DataDirLocked } from './platform/db.ts';

/** Opens PostgreSQL (`config.url`) or embedded PGlite, typed with every tollhouse table. */
export function createDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  return openDatabase<Database>(options);
}
