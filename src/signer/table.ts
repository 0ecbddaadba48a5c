// Kysely table interfaces of the signer (db/migrations/0050_create_funding_transactions.ts).
import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

export type FundingKind = 'fund' | 'unlock' | 'cancel_unlock' | 'withdraw';
export type FundingOrigin = 'policy' | 'manual';
export type FundingStatus = 'intent' | 'sent' | 'confirmed' | 'failed' | 'replaced';

/** numeric(78,0): both drivers return a string; written as a decimal string. */
type Wei = ColumnType<string, string | undefined, string>;

export interface FundingTransactionsTable {
  id: string;
  kind: FundingKind;
  origin: FundingOrigin;
  status: FundingStatus;
  chain_id: ColumnType<bigint, bigint, never>;
  from_address: string;
  beneficiary: string;
  deposit_wei: Wei;
  reserve_wei: Wei;
  value_wei: Wei;
  wanted_wei: Wei;
  nonce: bigint | null;
  tx_hash: string | null;
  raw_tx: string | null;
  block_number: bigint | null;
  error: string | null;
  created_at: Generated<Date>;
  sent_at: Date | null;
  settled_at: Date | null;
}

export type FundingTransactionRow = Selectable<FundingTransactionsTable>;
export type NewFundingTransactionRow = Insertable<FundingTransactionsTable>;

/** db/migrations/0056_create_signer_confirmations.ts */
export interface SignerConfirmationsTable {
  token_hash: string;
  kind: FundingKind;
  actor: string;
  beneficiary: string;
  deposit_wei: Wei;
  reserve_wei: Wei;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
  funding_id: string | null;
  error: string | null;
}
