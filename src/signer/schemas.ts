// The signer status on the wire (GET /v1/signer and `tollhouse signer status`): wei, rounds and
// block numbers as decimal strings (JSON numbers cannot hold them), times as ISO 8601.
import { z } from 'zod';
import type { SenderInfo } from './chain.ts';
import type { FundingTransaction } from './queries.ts';
import type { SignerStatus } from './service.ts';

const decimal = z.string().regex(/^\d+$/);
const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/);
const time = z.string();

const sender = z.object({
  address,
  depositWei: decimal,
  reserveWei: decimal,
  claimedInCurrentRoundWei: decimal,
  withdrawRound: decimal,
  unlockInProgress: z.boolean(),
});

export const fundingTransactionSchema = z.object({
  id: z.string(),
  kind: z.enum(['fund', 'unlock', 'cancel_unlock', 'withdraw']),
  origin: z.enum(['policy', 'manual']),
  status: z.enum(['intent', 'sent', 'confirmed', 'failed', 'replaced']),
  beneficiary: address,
  depositWei: decimal,
  reserveWei: decimal,
  valueWei: decimal,
  txHash: z.string().nullable(),
  nonce: decimal.nullable(),
  blockNumber: decimal.nullable(),
  error: z.string().nullable(),
  createdAt: time,
  settledAt: time.nullable(),
});

// GET /v1/signer/funding: a page of the journal, newest first. 100 rows default a screenful;
// 500 bounds one response (a row is ~400 bytes of JSON).
export const fundingHistoryQuery = z.strictObject({
  cursor: z
    .string()
    .regex(/^ftx_[0-9A-Za-z]{22}$/, 'expected a cursor returned by this API (ftx_…)')
    .optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export const fundingHistorySchema = z.object({
  transactions: z.array(fundingTransactionSchema),
  next_cursor: z.string().nullable(),
});

export const signerStatusSchema = z.object({
  enabled: z.boolean(),
  reason: z.string().nullable(),
  address: address.nullable(),
  beneficiary: address.nullable(),
  chainId: decimal.nullable(),
  contracts: z
    .object({
      controller: address,
      ticketBroker: address,
      roundsManager: address,
      bondingManager: address,
    })
    .nullable(),
  rpc: z
    .object({
      state: z.enum(['connecting', 'ok', 'unreachable']),
      consecutiveFailures: z.number().int(),
      lastError: z.string().nullable(),
      lastSuccessAt: time.nullable(),
      nextRetryAt: time.nullable(),
    })
    .nullable(),
  chain: z
    .object({
      blockNumber: decimal,
      l1BlockNumber: decimal,
      ethWei: decimal,
      currentRound: decimal,
      lastInitializedRound: decimal,
      lastInitializedRoundBlockHash: z.string(),
      unlockPeriodRounds: decimal,
      ticketValidityRounds: decimal,
      refreshedAt: time,
      sender,
      beneficiary: sender,
    })
    .nullable(),
  funding: z
    .object({
      policy: z
        .object({
          targetDepositWei: decimal,
          targetReserveWei: decimal,
          refillThresholdPercent: z.number().int(),
          maxPerTxWei: decimal,
          maxPerDayWei: decimal,
          fundFor: address.nullable(),
        })
        .nullable(),
      gasReserveWei: decimal,
      spentLastDayWei: decimal,
      lastRun: z.object({
        state: z.enum([
          'disabled',
          'starting',
          'idle',
          'sent',
          'waiting_for_pending',
          'paused_unlocking',
          'capped',
          'insufficient_eth',
          'not_leader',
          'error',
        ]),
        message: z.string(),
        at: time,
      }),
      lastTransaction: fundingTransactionSchema.nullable(),
    })
    .nullable(),
  warnings: z.array(z.string()),
});

export type SignerStatusJson = z.input<typeof signerStatusSchema>;
export type FundingTransactionJson = z.input<typeof fundingTransactionSchema>;

const iso = (d: Date | null) => (d === null ? null : d.toISOString());
const str = (n: bigint | null) => (n === null ? null : n.toString());

function senderJson(s: SenderInfo): z.input<typeof sender> {
  return {
    address: s.address,
    depositWei: s.depositWei.toString(),
    reserveWei: s.reserveWei.toString(),
    claimedInCurrentRoundWei: s.claimedInCurrentRoundWei.toString(),
    withdrawRound: s.withdrawRound.toString(),
    unlockInProgress: s.unlockInProgress,
  };
}

export function fundingTransactionJson(t: FundingTransaction): FundingTransactionJson {
  return {
    id: t.id,
    kind: t.kind,
    origin: t.origin,
    status: t.status,
    beneficiary: t.beneficiary,
    depositWei: t.depositWei.toString(),
    reserveWei: t.reserveWei.toString(),
    valueWei: t.valueWei.toString(),
    txHash: t.txHash,
    nonce: str(t.nonce),
    blockNumber: str(t.blockNumber),
    error: t.error,
    createdAt: t.createdAt.toISOString(),
    settledAt: iso(t.settledAt),
  };
}

export function signerStatusJson(s: SignerStatus): SignerStatusJson {
  const v = s.view;
  const p = s.funding?.policy ?? null;
  return {
    enabled: s.enabled,
    reason: s.reason,
    address: s.address,
    beneficiary: s.beneficiary,
    chainId: str(s.chainId),
    contracts: s.contracts,
    rpc:
      s.rpc === null
        ? null
        : {
            state: s.rpc.state,
            consecutiveFailures: s.rpc.consecutiveFailures,
            lastError: s.rpc.lastError,
            lastSuccessAt: iso(s.rpc.lastSuccessAt),
            nextRetryAt: iso(s.rpc.nextRetryAt),
          },
    chain:
      v === null
        ? null
        : {
            blockNumber: v.blockNumber.toString(),
            l1BlockNumber: v.l1BlockNumber.toString(),
            ethWei: v.ethWei.toString(),
            currentRound: v.currentRound.toString(),
            lastInitializedRound: v.lastInitializedRound.toString(),
            lastInitializedRoundBlockHash: v.lastInitializedRoundBlockHash,
            unlockPeriodRounds: v.unlockPeriodRounds.toString(),
            ticketValidityRounds: v.ticketValidityRounds.toString(),
            refreshedAt: v.refreshedAt.toISOString(),
            sender: senderJson(v.sender),
            beneficiary: senderJson(v.beneficiary),
          },
    funding:
      s.funding === null
        ? null
        : {
            policy:
              p === null
                ? null
                : {
                    targetDepositWei: p.targetDepositWei.toString(),
                    targetReserveWei: p.targetReserveWei.toString(),
                    refillThresholdPercent: p.refillThresholdPercent,
                    maxPerTxWei: p.maxPerTxWei.toString(),
                    maxPerDayWei: p.maxPerDayWei.toString(),
                    fundFor: p.fundFor,
                  },
            gasReserveWei: s.funding.gasReserveWei.toString(),
            spentLastDayWei: s.funding.spentLastDayWei.toString(),
            lastRun: {
              state: s.funding.lastRun.state,
              message: s.funding.lastRun.message,
              at: s.funding.lastRun.at.toISOString(),
            },
            lastTransaction:
              s.funding.lastTransaction === null
                ? null
                : fundingTransactionJson(s.funding.lastTransaction),
          },
    warnings: s.warnings,
  };
}
