// SQL of the funding journal (funding_transactions) and the operators' confirmations. Wei columns are numeric(78,0): strings
// from both drivers, turned into bigint here.
import { sql } from 'kysely';
import type { Kysely, Selectable } from 'kysely';
import type { Database } from '../database.ts';
import type {
  FundingKind,
  FundingOrigin,
  FundingStatus,
  FundingTransactionRow,
  SignerConfirmationsTable,
} from './table.ts';

export interface FundingTransaction {
  id: string;
  kind: FundingKind;
  origin: FundingOrigin;
  status: FundingStatus;
  chainId: bigint;
  fromAddress: string;
  beneficiary: string;
  depositWei: bigint;
  reserveWei: bigint;
  valueWei: bigint;
  /** What the policy wanted to send; more than valueWei when a cap cut it short. */
  wantedWei: bigint;
  nonce: bigint | null;
  txHash: string | null;
  rawTx: string | null;
  blockNumber: bigint | null;
  error: string | null;
  createdAt: Date;
  sentAt: Date | null;
  settledAt: Date | null;
}

export function toFundingTransaction(row: FundingTransactionRow): FundingTransaction {
  return {
    id: row.id,
    kind: row.kind,
    origin: row.origin,
    status: row.status,
    chainId: BigInt(row.chain_id),
    fromAddress: row.from_address,
    beneficiary: row.beneficiary,
    depositWei: BigInt(row.deposit_wei),
    reserveWei: BigInt(row.reserve_wei),
    valueWei: BigInt(row.value_wei),
    wantedWei: BigInt(row.wanted_wei),
    nonce: row.nonce === null ? null : BigInt(row.nonce),
    txHash: row.tx_hash,
    rawTx: row.raw_tx,
    blockNumber: row.block_number === null ? null : BigInt(row.block_number),
    error: row.error,
    createdAt: row.created_at,
    sentAt: row.sent_at,
    settledAt: row.settled_at,
  };
}

export interface NewFundingIntent {
  id: string;
  kind: FundingKind;
  origin: FundingOrigin;
  chainId: bigint;
  fromAddress: string;
  beneficiary: string;
  depositWei: bigint;
  reserveWei: bigint;
  /** Defaults to depositWei + reserveWei. */
  wantedWei?: bigint;
}

export async function insertFundingIntent(
  db: Kysely<Database>,
  intent: NewFundingIntent,
): Promise<void> {
  await db
    .insertInto('funding_transactions')
    .values({
      id: intent.id,
      kind: intent.kind,
      origin: intent.origin,
      status: 'intent',
      chain_id: intent.chainId,
      from_address: intent.fromAddress,
      beneficiary: intent.beneficiary,
      deposit_wei: intent.depositWei.toString(),
      reserve_wei: intent.reserveWei.toString(),
      value_wei: (intent.depositWei + intent.reserveWei).toString(),
      wanted_wei: (intent.wantedWei ?? intent.depositWei + intent.reserveWei).toString(),
      nonce: null,
      tx_hash: null,
      raw_tx: null,
      block_number: null,
      error: null,
      sent_at: null,
      settled_at: null,
    })
    .execute();
}

export async function markFundingSent(
  db: Kysely<Database>,
  id: string,
  sent: { txHash: string; nonce: bigint; rawTx: string },
): Promise<void> {
  await db
    .updateTable('funding_transactions')
    .set({
      status: 'sent',
      tx_hash: sent.txHash,
      nonce: sent.nonce,
      raw_tx: sent.rawTx,
      sent_at: sql<Date>`now()`,
    })
    .where('id', '=', id)
    .where('status', '=', 'intent')
    .execute();
}

/** Settles a pending row; a row another process settled first is left as it is. */
export async function settleFunding(
  db: Kysely<Database>,
  id: string,
  outcome: { status: 'confirmed' | 'failed' | 'replaced'; blockNumber?: bigint; error?: string },
): Promise<void> {
  await db
    .updateTable('funding_transactions')
    .set({
      status: outcome.status,
      block_number: outcome.blockNumber ?? null,
      error: outcome.error?.slice(0, 500) ?? null,
      settled_at: sql<Date>`now()`,
    })
    .where('id', '=', id)
    .where('status', 'in', ['intent', 'sent'])
    .execute();
}

export async function findPendingFunding(
  db: Kysely<Database>,
  fromAddress: string,
  chainId: bigint,
): Promise<FundingTransaction[]> {
  const rows = await db
    .selectFrom('funding_transactions')
    .selectAll()
    .where('status', 'in', ['intent', 'sent'])
    .where('from_address', '=', fromAddress)
    .where('chain_id', '=', chainId)
    .orderBy('created_at')
    .execute();
  return rows.map(toFundingTransaction);
}

export async function findFundingById(
  db: Kysely<Database>,
  id: string,
): Promise<FundingTransaction | null> {
  const row = await db
    .selectFrom('funding_transactions')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirst();
  return row === undefined ? null : toFundingTransaction(row);
}

/** The latest automatic funding of `beneficiary` that was mined successfully. */
export async function findLatestPolicyFunding(
  db: Kysely<Database>,
  fromAddress: string,
  beneficiary: string,
): Promise<FundingTransaction | null> {
  const row = await db
    .selectFrom('funding_transactions')
    .selectAll()
    .where('from_address', '=', fromAddress)
    .where('beneficiary', '=', beneficiary)
    .where('kind', '=', 'fund')
    .where('status', '=', 'confirmed')
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row === undefined ? null : toFundingTransaction(row);
}

export async function findLatestFunding(
  db: Kysely<Database>,
  fromAddress: string,
): Promise<FundingTransaction | null> {
  const row = await db
    .selectFrom('funding_transactions')
    .selectAll()
    .where('from_address', '=', fromAddress)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row === undefined ? null : toFundingTransaction(row);
}

/**
 * A page of the whole journal, newest first. The cursor is the id of the last row of the
 * previous page; its (created_at, id) is read in SQL, so the keyset keeps PostgreSQL's
 * microsecond timestamps (a JS Date would round them to milliseconds and skip or repeat rows).
 * Returns null when the cursor names no row.
 */
export async function pageFunding(
  db: Kysely<Database>,
  before: string | null,
  limit: number,
): Promise<FundingTransaction[] | null> {
  if (before !== null && (await findFundingById(db, before)) === null) return null;
  let query = db.selectFrom('funding_transactions').selectAll();
  if (before !== null) {
    query = query.where(
      sql<boolean>`(created_at, id) < (select created_at, id from funding_transactions where id = ${before})`,
    );
  }
  const rows = await query
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
  return rows.map(toFundingTransaction);
}

/**
 * Wei committed to funding by `fromAddress` in the last 24 hours (database clock, shared by
 * every replica): rows that may still move money count (intent, sent), as do confirmed ones.
 */
export async function sumFundingLastDay(
  db: Kysely<Database>,
  fromAddress: string,
  origin?: FundingOrigin,
): Promise<bigint> {
  let query = db
    .selectFrom('funding_transactions')
    .select(sql<string | null>`sum(value_wei)`.as('total'))
    .where('kind', '=', 'fund')
    .where('from_address', '=', fromAddress)
    .where('status', 'in', ['intent', 'sent', 'confirmed'])
    .where('created_at', '>', sql<Date>`now() - interval '24 hours'`);
  if (origin !== undefined) query = query.where('origin', '=', origin);
  const row = await query.executeTakeFirst();
  return BigInt(row?.total ?? '0');
}

/** Session advisory lock (on the connection `db` is bound to); true when taken. */
export async function tryAdvisoryLock(db: Kysely<Database>, key: bigint): Promise<boolean> {
  const result = await sql<{
    locked: boolean;
  }>`select pg_try_advisory_lock(${key}) as locked`.execute(db);
  return result.rows[0]?.locked === true;
}

export async function advisoryUnlock(db: Kysely<Database>, key: bigint): Promise<void> {
  await sql`select pg_advisory_unlock(${key})`.execute(db);
}

export interface NewConfirmation {
  tokenHash: string;
  kind: FundingKind;
  actor: string;
  beneficiary: string;
  depositWei: bigint;
  reserveWei: bigint;
  createdAt: Date;
  expiresAt: Date;
}

export interface Confirmation extends NewConfirmation {
  usedAt: Date | null;
  fundingId: string | null;
  error: string | null;
}

function toConfirmation(row: Selectable<SignerConfirmationsTable>): Confirmation {
  return {
    tokenHash: row.token_hash,
    kind: row.kind,
    actor: row.actor,
    beneficiary: row.beneficiary,
    depositWei: BigInt(row.deposit_wei),
    reserveWei: BigInt(row.reserve_wei),
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    usedAt: row.used_at,
    fundingId: row.funding_id,
    error: row.error,
  };
}

export async function insertConfirmation(db: Kysely<Database>, c: NewConfirmation): Promise<void> {
  await db
    .insertInto('signer_confirmations')
    .values({
      token_hash: c.tokenHash,
      kind: c.kind,
      actor: c.actor,
      beneficiary: c.beneficiary,
      deposit_wei: c.depositWei.toString(),
      reserve_wei: c.reserveWei.toString(),
      created_at: c.createdAt,
      expires_at: c.expiresAt,
    })
    .execute();
  // Spent and expired tokens are of no use after a day; the journal and audit log keep the facts.
  await db
    .deleteFrom('signer_confirmations')
    .where('expires_at', '<', new Date(c.createdAt.getTime() - 86_400_000))
    .execute();
}

/**
 * Claims an unused, unexpired token of this kind and caller once: the one UPDATE that makes
 * execution idempotent. A token presented on the wrong path or by another caller stays unused.
 */
export async function claimConfirmation(
  db: Kysely<Database>,
  claim: { tokenHash: string; kind: FundingKind; actor: string; now: Date },
): Promise<Confirmation | null> {
  const { tokenHash, now } = claim;
  const row = await db
    .updateTable('signer_confirmations')
    .set({ used_at: now })
    .where('token_hash', '=', tokenHash)
    .where('kind', '=', claim.kind)
    .where('actor', '=', claim.actor)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .returningAll()
    .executeTakeFirst();
  return row === undefined ? null : toConfirmation(row);
}

export async function findConfirmation(
  db: Kysely<Database>,
  tokenHash: string,
): Promise<Confirmation | null> {
  const row = await db
    .selectFrom('signer_confirmations')
    .selectAll()
    .where('token_hash', '=', tokenHash)
    .executeTakeFirst();
  return row === undefined ? null : toConfirmation(row);
}

export async function finishConfirmation(
  db: Kysely<Database>,
  tokenHash: string,
  outcome: { fundingId: string } | { error: string },
): Promise<void> {
  await db
    .updateTable('signer_confirmations')
    .set('fundingId' in outcome ? { funding_id: outcome.fundingId } : { error: outcome.error })
    .where('token_hash', '=', tokenHash)
    .execute();
}

/** Failed journal rows of the last 24 hours (database clock), for the metrics scrape. */
export async function countFailedFundingLastDay(
  db: Kysely<Database>,
  fromAddress: string,
): Promise<number> {
  const row = await db
    .selectFrom('funding_transactions')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('from_address', '=', fromAddress)
    .where('status', '=', 'failed')
    .where('created_at', '>', sql<Date>`now() - interval '24 hours'`)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}
