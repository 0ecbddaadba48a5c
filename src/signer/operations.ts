// Operator transactions over the API and console, in two steps. A preview reads the chain now,
// checks what the TicketBroker and the caps would say, estimates the gas and its cost, and hands
// out a short-lived confirmation token bound to exactly what it showed (kind, beneficiary,
// amounts, who asked). Executing claims the token with one conditional UPDATE — so a repeated
// or concurrent execute never sends twice, on any replica — checks again (the chain may have
// moved), and sends through the same `operate` the CLI uses: same journal, same audit log.
import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import type { Clock } from '../platform/clock.ts';
import type { Chain } from './chain.ts';
import { OperationRefused } from './errors.ts';
import { operationCallData } from './funding.ts';
import type { FundingPolicy, ManualRequest } from './funding.ts';
import {
  claimConfirmation,
  findConfirmation,
  findFundingById,
  finishConfirmation,
  insertConfirmation,
} from './queries.ts';
import type { FundingTransaction } from './queries.ts';
import type { FundingKind } from './table.ts';

// Long enough to read the amounts and press Confirm; short enough that the preview's gas price
// and balances are still roughly what the chain says.
export const CONFIRMATION_TTL_MS = 5 * 60_000;

export interface OperationRequest {
  kind: FundingKind;
  depositWei: bigint;
  reserveWei: bigint;
  /** fund only; null: SIGNER_FUND_FOR or the signer itself. */
  beneficiary: string | null;
  /** Who asks (`key_…`, `acct_…`): only they can confirm. */
  actor: string;
}

export interface Cap {
  name: 'max_per_tx' | 'max_per_day' | 'gas_reserve';
  limitWei: bigint;
  /** What the cap is measured against once this transaction is sent. */
  afterWei: bigint;
  ok: boolean;
  explanation: string;
}

export interface Assessment {
  kind: FundingKind;
  from: string;
  beneficiary: string;
  depositWei: bigint;
  reserveWei: bigint;
  valueWei: bigint;
  gasLimit: bigint;
  gasPriceWei: bigint;
  gasCostWei: bigint;
  ethWei: bigint;
  caps: Cap[];
  notes: string[];
}

export interface OperationPreview extends Assessment {
  confirmationToken: string;
  expiresAt: Date;
}

export interface OperationResult {
  transaction: FundingTransaction;
  /** The token had been executed before: this is its transaction, nothing was sent again. */
  replayed: boolean;
}

export interface Operations {
  preview(request: OperationRequest): Promise<OperationPreview>;
  execute(kind: FundingKind, token: string, actor: string): Promise<OperationResult>;
}

export interface OperationsDeps {
  db: Kysely<Database>;
  clock: Clock;
  address: string;
  policy: FundingPolicy | null;
  gasReserveWei: bigint;
  /** Reads the chain now; throws SignerUnavailable when it cannot. */
  chain(): Promise<Chain>;
  spentLastDayWei(): Promise<bigint>;
  operate(request: ManualRequest): Promise<FundingTransaction>;
}

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

export function createOperations(deps: OperationsDeps): Operations {
  const { db, clock, address, policy } = deps;

  const senderInfo = async (chain: Chain, who: string) => {
    const [sender, reserve] = (await chain.ticketBroker.getFunction('getSenderInfo')(who)) as [
      [bigint, bigint],
      [bigint, bigint],
    ];
    return { deposit: sender[0], withdrawRound: sender[1], reserve: reserve[0] };
  };

  /** What sending `request` now would do, or the refusal it would meet. */
  const assess = async (request: OperationRequest): Promise<Assessment> => {
    const chain = await deps.chain();
    const beneficiary =
      request.kind === 'fund' ? (request.beneficiary ?? policy?.fundFor ?? address) : address;
    const depositWei = request.kind === 'fund' ? request.depositWei : 0n;
    const reserveWei = request.kind === 'fund' ? request.reserveWei : 0n;
    const valueWei = depositWei + reserveWei;
    const [own, ethWei, round] = await Promise.all([
      senderInfo(chain, address),
      chain.provider.getBalance(address),
      chain.roundsManager.getFunction('currentRound')() as Promise<bigint>,
    ]);
    const notes: string[] = [];
    const unlocking = own.withdrawRound > 0n && own.deposit + own.reserve > 0n;
    switch (request.kind) {
      case 'fund': {
        const target = beneficiary === address ? own : await senderInfo(chain, beneficiary);
        if (target.withdrawRound > 0n && target.deposit + target.reserve > 0n) {
          notes.push(`funding ${beneficiary} cancels the unlock in progress`);
        }
        break;
      }
      case 'unlock':
        if (unlocking) {
          throw new OperationRefused(
            'UnlockPending',
            `An unlock is already in progress: withdrawable from round ${own.withdrawRound}`,
          );
        }
        if (own.deposit + own.reserve === 0n) {
          throw new OperationRefused(
            'NothingToUnlock',
            'The deposit and reserve are empty: nothing to unlock',
          );
        }
        break;
      case 'cancel_unlock':
        if (!unlocking) throw new OperationRefused('NoUnlockPending', 'No unlock is in progress');
        break;
      case 'withdraw':
        if (own.deposit + own.reserve === 0n) {
          throw new OperationRefused(
            'NothingToWithdraw',
            'The deposit and reserve are empty: nothing to withdraw',
          );
        }
        if (!unlocking) {
          throw new OperationRefused(
            'NoUnlockPending',
            'Withdrawing needs an unlock first: unlock, then wait for the unlock period',
          );
        }
        if (round < own.withdrawRound) {
          throw new OperationRefused(
            'UnlockNotFinished',
            `The unlock period has not ended: withdrawable from round ${own.withdrawRound} (the current round is ${round})`,
          );
        }
        notes.push(
          `withdraws the deposit (${own.deposit} wei) and reserve (${own.reserve} wei) to ${address}`,
        );
        break;
    }

    let gasLimit: bigint;
    try {
      gasLimit = await chain.provider.estimateGas({
        from: address,
        to: chain.addresses.ticketBroker,
        data: operationCallData(
          { kind: request.kind, depositWei, reserveWei },
          address,
          beneficiary,
        ),
        value: valueWei,
      });
    } catch (error) {
      const e = error as { code?: string; reason?: string | null; shortMessage?: string };
      if (e.code === 'INSUFFICIENT_FUNDS') {
        throw new OperationRefused(
          'InsufficientEth',
          `The signer holds ${ethWei} wei: not enough for ${valueWei} wei and gas`,
          { details: { eth_wei: ethWei.toString(), value_wei: valueWei.toString() } },
        );
      }
      throw new OperationRefused(
        'WouldRevert',
        `The TicketBroker would refuse ${request.kind}: ${String(e.reason ?? e.shortMessage ?? error).slice(0, 200)}`,
        { cause: error },
      );
    }
    const fees = await chain.provider.getFeeData();
    // The most the transaction can cost (maxFeePerGas is what the wallet must hold).
    const gasPriceWei = fees.maxFeePerGas ?? fees.gasPrice ?? 0n;
    const gasCostWei = gasLimit * gasPriceWei;
    if (ethWei < valueWei + gasCostWei) {
      throw new OperationRefused(
        'InsufficientEth',
        `The signer holds ${ethWei} wei: ${request.kind} needs ${valueWei} wei plus up to ${gasCostWei} wei of gas`,
        {
          details: {
            eth_wei: ethWei.toString(),
            value_wei: valueWei.toString(),
            gas_cost_wei: gasCostWei.toString(),
          },
        },
      );
    }

    const caps: Cap[] = [];
    if (request.kind === 'fund') {
      if (policy !== null) {
        caps.push({
          name: 'max_per_tx',
          limitWei: policy.maxPerTxWei,
          afterWei: valueWei,
          ok: valueWei <= policy.maxPerTxWei,
          explanation: `SIGNER_MAX_PER_TX_WEI: one funding transaction sends at most ${policy.maxPerTxWei} wei`,
        });
        const spent = await deps.spentLastDayWei();
        caps.push({
          name: 'max_per_day',
          limitWei: policy.maxPerDayWei,
          afterWei: spent + valueWei,
          ok: spent + valueWei <= policy.maxPerDayWei,
          explanation: `SIGNER_MAX_PER_DAY_WEI: funding sends at most ${policy.maxPerDayWei} wei in any 24 hours (${spent} wei sent so far, automatic and manual)`,
        });
      }
      const left = ethWei - valueWei - gasCostWei;
      caps.push({
        name: 'gas_reserve',
        limitWei: deps.gasReserveWei,
        afterWei: left,
        ok: left >= deps.gasReserveWei,
        explanation: `SIGNER_GAS_RESERVE_WEI: at least ${deps.gasReserveWei} wei of ETH stays for gas`,
      });
    }
    return {
      kind: request.kind,
      from: address,
      beneficiary,
      depositWei,
      reserveWei,
      valueWei,
      gasLimit,
      gasPriceWei,
      gasCostWei,
      ethWei,
      caps,
      notes,
    };
  };

  const assertWithinCaps = (a: Assessment) => {
    const broken = a.caps.filter((c) => !c.ok);
    if (broken.length === 0) return;
    throw new OperationRefused(
      'CapExceeded',
      `Over ${broken.map((c) => c.name).join(' and ')}: ${broken.map((c) => c.explanation).join('; ')}`,
      { details: { caps: broken.map((c) => c.name) } },
    );
  };

  return {
    async preview(request) {
      const assessment = await assess(request);
      assertWithinCaps(assessment);
      const token = `sgc_${randomBytes(32).toString('base64url')}`;
      const now = clock();
      const expiresAt = new Date(now.getTime() + CONFIRMATION_TTL_MS);
      await insertConfirmation(db, {
        tokenHash: hashToken(token),
        kind: assessment.kind,
        actor: request.actor,
        beneficiary: assessment.beneficiary,
        depositWei: assessment.depositWei,
        reserveWei: assessment.reserveWei,
        createdAt: now,
        expiresAt,
      });
      return { ...assessment, confirmationToken: token, expiresAt };
    },

    async execute(kind, token, actor) {
      const tokenHash = hashToken(token);
      const claimed = await claimConfirmation(db, { tokenHash, kind, actor, now: clock() });
      if (claimed === null) {
        const row = await findConfirmation(db, tokenHash);
        // Another operator's token, or one for another operation, is as good as unknown.
        if (row === null || row.kind !== kind || row.actor !== actor) {
          throw new OperationRefused(
            'ConfirmationInvalid',
            `Not a confirmation token of a ${kind} preview by this caller; preview it again`,
          );
        }
        if (row.usedAt === null) {
          throw new OperationRefused(
            'ConfirmationInvalid',
            `The confirmation expired at ${row.expiresAt.toISOString()}; preview it again`,
          );
        }
        if (row.fundingId !== null) {
          const transaction = await findFundingById(db, row.fundingId);
          if (transaction !== null) return { transaction, replayed: true };
        }
        throw new OperationRefused(
          'ConfirmationUsed',
          row.error === null
            ? 'This confirmation is being executed; its transaction shows in the funding journal'
            : `This confirmation was used and failed (${row.error}); preview again`,
        );
      }
      try {
        // The chain (or another operator) may have moved since the preview.
        const request: OperationRequest = {
          kind,
          actor,
          beneficiary: claimed.beneficiary,
          depositWei: claimed.depositWei,
          reserveWei: claimed.reserveWei,
        };
        assertWithinCaps(await assess(request));
        const transaction = await deps.operate({
          kind,
          actor,
          depositWei: claimed.depositWei,
          reserveWei: claimed.reserveWei,
          ...(kind === 'fund' ? { beneficiary: claimed.beneficiary } : {}),
          // assess() above read the journal without the funding lock; the cap is enforced
          // again under it, where a concurrent execute on another replica cannot slip in.
          ...(kind === 'fund' && policy !== null ? { maxPerDayWei: policy.maxPerDayWei } : {}),
        });
        await finishConfirmation(db, tokenHash, { fundingId: transaction.id });
        return { transaction, replayed: false };
      } catch (error) {
        await finishConfirmation(db, tokenHash, {
          error: String((error as Error).message).slice(0, 300),
        });
        throw error;
      }
    },
  };
}
