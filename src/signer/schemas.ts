// The signer status on the wire (GET /v1/signer and `tollhouse signer status`): wei, rounds and
// block numbers as decimal strings (JSON numbers cannot hold them), times as ISO 8601.
import { z } from 'zod';
import type { SenderInfo } from './chain.ts';
import type { FundingTransaction } from './queries.ts';
import type { OperationPreview } from './operations.ts';
import type { SignerStatus } from './service.ts';

const decimal = z.string().regex(/^\d+$/);
const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/);
const time = z.string();

const sender = z.object({
  address,
  deposit_wei: decimal,
  reserve_wei: decimal,
  claimed_in_current_round_wei: decimal,
  withdraw_round: decimal,
  unlock_in_progress: z.boolean(),
});

export const fundingTransactionSchema = z.object({
  id: z.string(),
  kind: z.enum(['fund', 'unlock', 'cancel_unlock', 'withdraw']),
  origin: z.enum(['policy', 'manual']),
  status: z.enum(['intent', 'sent', 'confirmed', 'failed', 'replaced']),
  beneficiary: address,
  deposit_wei: decimal,
  reserve_wei: decimal,
  value_wei: decimal,
  tx_hash: z.string().nullable(),
  nonce: decimal.nullable(),
  block_number: decimal.nullable(),
  error: z.string().nullable(),
  created_at: time,
  settled_at: time.nullable(),
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
  chain_id: decimal.nullable(),
  contracts: z
    .object({
      controller: address,
      ticket_broker: address,
      rounds_manager: address,
      bonding_manager: address,
    })
    .nullable(),
  rpc: z
    .object({
      state: z.enum(['connecting', 'ok', 'unreachable']),
      consecutive_failures: z.number().int(),
      last_error: z.string().nullable(),
      last_success_at: time.nullable(),
      next_retry_at: time.nullable(),
    })
    .nullable(),
  chain: z
    .object({
      block_number: decimal,
      l1_block_number: decimal,
      eth_wei: decimal,
      current_round: decimal,
      last_initialized_round: decimal,
      last_initialized_round_block_hash: z.string(),
      unlock_period_rounds: decimal,
      ticket_validity_rounds: decimal,
      refreshed_at: time,
      sender,
      beneficiary: sender,
    })
    .nullable(),
  funding: z
    .object({
      policy: z
        .object({
          target_deposit_wei: decimal,
          target_reserve_wei: decimal,
          refill_threshold_percent: z.number().int(),
          max_per_tx_wei: decimal,
          max_per_day_wei: decimal,
          fund_for: address.nullable(),
        })
        .nullable(),
      gas_reserve_wei: decimal,
      spent_last_day_wei: decimal,
      last_run: z.object({
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
      last_transaction: fundingTransactionSchema.nullable(),
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
    deposit_wei: s.depositWei.toString(),
    reserve_wei: s.reserveWei.toString(),
    claimed_in_current_round_wei: s.claimedInCurrentRoundWei.toString(),
    withdraw_round: s.withdrawRound.toString(),
    unlock_in_progress: s.unlockInProgress,
  };
}

export function fundingTransactionJson(t: FundingTransaction): FundingTransactionJson {
  return {
    id: t.id,
    kind: t.kind,
    origin: t.origin,
    status: t.status,
    beneficiary: t.beneficiary,
    deposit_wei: t.depositWei.toString(),
    reserve_wei: t.reserveWei.toString(),
    value_wei: t.valueWei.toString(),
    tx_hash: t.txHash,
    nonce: str(t.nonce),
    block_number: str(t.blockNumber),
    error: t.error,
    created_at: t.createdAt.toISOString(),
    settled_at: iso(t.settledAt),
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
    chain_id: str(s.chainId),
    contracts:
      s.contracts === null
        ? null
        : {
            controller: s.contracts.controller,
            ticket_broker: s.contracts.ticketBroker,
            rounds_manager: s.contracts.roundsManager,
            bonding_manager: s.contracts.bondingManager,
          },
    rpc:
      s.rpc === null
        ? null
        : {
            state: s.rpc.state,
            consecutive_failures: s.rpc.consecutiveFailures,
            last_error: s.rpc.lastError,
            last_success_at: iso(s.rpc.lastSuccessAt),
            next_retry_at: iso(s.rpc.nextRetryAt),
          },
    chain:
      v === null
        ? null
        : {
            block_number: v.blockNumber.toString(),
            l1_block_number: v.l1BlockNumber.toString(),
            eth_wei: v.ethWei.toString(),
            current_round: v.currentRound.toString(),
            last_initialized_round: v.lastInitializedRound.toString(),
            last_initialized_round_block_hash: v.lastInitializedRoundBlockHash,
            unlock_period_rounds: v.unlockPeriodRounds.toString(),
            ticket_validity_rounds: v.ticketValidityRounds.toString(),
            refreshed_at: v.refreshedAt.toISOString(),
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
                    target_deposit_wei: p.targetDepositWei.toString(),
                    target_reserve_wei: p.targetReserveWei.toString(),
                    refill_threshold_percent: p.refillThresholdPercent,
                    max_per_tx_wei: p.maxPerTxWei.toString(),
                    max_per_day_wei: p.maxPerDayWei.toString(),
                    fund_for: p.fundFor,
                  },
            gas_reserve_wei: s.funding.gasReserveWei.toString(),
            spent_last_day_wei: s.funding.spentLastDayWei.toString(),
            last_run: {
              state: s.funding.lastRun.state,
              message: s.funding.lastRun.message,
              at: s.funding.lastRun.at.toISOString(),
            },
            last_transaction:
              s.funding.lastTransaction === null
                ? null
                : fundingTransactionJson(s.funding.lastTransaction),
          },
    warnings: s.warnings,
  };
}

// POST /v1/signer/{fund,fund-for,unlock,cancel-unlock,withdraw}: `dry_run: true` previews
// (amounts, gas, caps, a confirmation token); `confirmation_token` alone executes the preview.
const MAX_UINT256 = (1n << 256n) - 1n;
const weiAmount = z
  .string()
  .regex(/^\d{1,78}$/, 'expected an amount in wei (a whole number as a string)')
  .refine((v) => !/^\d+$/.test(v) || BigInt(v) <= MAX_UINT256, 'exceeds uint256');
const confirmationToken = z
  .string()
  .regex(/^sgc_[A-Za-z0-9_-]{43}$/, 'expected the confirmation_token of a preview');

function twoStep<T extends z.ZodRawShape>(shape: T) {
  return z
    .strictObject({
      dry_run: z.boolean().optional(),
      confirmation_token: confirmationToken.optional(),
      ...shape,
    })
    .superRefine((parsed, ctx) => {
      const body = parsed as Record<string, unknown>;
      const rest = Object.keys(shape).filter((k) => body[k] !== undefined);
      if (body.dry_run === true) {
        if (body.confirmation_token !== undefined)
          ctx.addIssue({
            code: 'custom',
            message: 'a preview (dry_run) takes no confirmation_token',
          });
      } else if (body.confirmation_token === undefined) {
        ctx.addIssue({
          code: 'custom',
          message: 'send dry_run: true to preview, then the confirmation_token it returns',
        });
      } else if (rest.length > 0) {
        ctx.addIssue({
          code: 'custom',
          message: `executing takes only the confirmation_token (the preview fixed ${rest.join(', ')})`,
        });
      }
    });
}

export const operationBodies = {
  fund: twoStep({ deposit_wei: weiAmount.optional(), reserve_wei: weiAmount.optional() }),
  'fund-for': twoStep({
    beneficiary: address.optional(),
    deposit_wei: weiAmount.optional(),
    reserve_wei: weiAmount.optional(),
  }),
  unlock: twoStep({}),
  'cancel-unlock': twoStep({}),
  withdraw: twoStep({}),
};

const capSchema = z.object({
  name: z.enum(['max_per_tx', 'max_per_day', 'gas_reserve']),
  limit_wei: decimal,
  after_wei: z.string().regex(/^-?\d+$/),
  ok: z.boolean(),
  explanation: z.string(),
});

export const operationPreviewSchema = z.object({
  operation: z.enum(['fund', 'unlock', 'cancel_unlock', 'withdraw']),
  from: address,
  beneficiary: address,
  deposit_wei: decimal,
  reserve_wei: decimal,
  value_wei: decimal,
  gas: z.object({ limit: decimal, price_wei: decimal, cost_wei: decimal }),
  eth_wei: decimal,
  caps: z.array(capSchema),
  notes: z.array(z.string()),
  confirmation_token: z.string(),
  expires_at: time,
});

export const operationResultSchema = z.object({
  transaction: fundingTransactionSchema,
  replayed: z.boolean(),
});

export const operationResponseSchema = z.union([operationPreviewSchema, operationResultSchema]);

export function operationPreviewJson(p: OperationPreview): z.infer<typeof operationPreviewSchema> {
  return {
    operation: p.kind,
    from: p.from,
    beneficiary: p.beneficiary,
    deposit_wei: p.depositWei.toString(),
    reserve_wei: p.reserveWei.toString(),
    value_wei: p.valueWei.toString(),
    gas: {
      limit: p.gasLimit.toString(),
      price_wei: p.gasPriceWei.toString(),
      cost_wei: p.gasCostWei.toString(),
    },
    eth_wei: p.ethWei.toString(),
    caps: p.caps.map((c) => ({
      name: c.name,
      limit_wei: c.limitWei.toString(),
      after_wei: c.afterWei.toString(),
      ok: c.ok,
      explanation: c.explanation,
    })),
    notes: p.notes,
    confirmation_token: p.confirmationToken,
    expires_at: p.expiresAt.toISOString(),
  };
}
