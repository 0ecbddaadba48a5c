// Funding: the automatic policy that keeps the TicketBroker deposit and reserve at target, and
// the operator's manual transactions (fund, unlock, cancel-unlock, withdraw). Every
// transaction goes through the journal (funding_transactions) under one PostgreSQL advisory
// lock, so exactly one replica or command sends at a time:
//
//   intent (amounts decided) → sent (signed; hash, nonce and raw bytes stored *before* the
//   broadcast) → confirmed | failed | replaced
//
// Before deciding anything the lock holder settles every pending row: a mined one is confirmed
// or failed, one the node still holds is waited for, one the node lost is rebroadcast from its
// raw bytes (same nonce, so it can never execute twice), and one whose nonce was used by
// another transaction is replaced. While any row is pending nothing new is sent, so a crash
// between sending and confirming never funds twice. The daily cap is summed from the journal
// with the database clock, under the same lock (policy runs and API operations alike), so it
// holds across restarts and replicas.
import { Transaction } from 'ethers';
import type { Wallet, HDNodeWallet } from 'ethers';
import type { Kysely } from 'kysely';
import type { EventSink, OutboundEvent } from '../platform/events.ts';
import { recordAudit } from '../platform/audit.ts';
import type { Database } from '../database.ts';
import { newId } from '../platform/ids.ts';
import type { Logger } from '../platform/log.ts';
import type { Chain } from './chain.ts';
import { ticketBrokerInterface } from './contracts.ts';
import { OperationRefused, SignerBusy, TransactionFailed } from './errors.ts';
import {
  advisoryUnlock,
  findFundingById,
  findLatestFunding,
  findLatestPolicyFunding,
  findPendingFunding,
  insertFundingIntent,
  markFundingSent,
  settleFunding,
  sumFundingLastDay,
  tryAdvisoryLock,
} from './queries.ts';
import type { FundingTransaction } from './queries.ts';
import type { FundingKind } from './table.ts';

// pg_advisory_lock key of the funding journal: the first 8 bytes of
// sha256("tollhouse.signer.funding") as a signed int8, so it cannot collide with another
// capability's lock by accident.
export const FUNDING_LOCK_KEY = 0x0ba32e93a338a7efn;

// How long a manual command waits for its transaction to be mined before it reports it as
// still pending (the journal keeps tracking it). Arbitrum mines in well under a second.
const CONFIRM_TIMEOUT_MS = 120_000;
const CONFIRM_POLL_MS = 250;
// How long a manual command waits for the lock that the serving replicas take for a moment
// on every poll.
const LOCK_WAIT_MS = 30_000;

export interface FundingPolicy {
  targetDepositWei: bigint;
  targetReserveWei: bigint;
  refillThresholdPercent: number;
  maxPerTxWei: bigint;
  maxPerDayWei: bigint;
  /** null: fund the signer's own deposit. */
  fundFor: string | null;
}

/** What the last policy run decided, for the status. */
export interface PolicyOutcome {
  state:
    | 'disabled'
    | 'starting'
    | 'idle'
    | 'sent'
    | 'waiting_for_pending'
    | 'paused_unlocking'
    | 'capped'
    | 'insufficient_eth'
    | 'not_leader'
    | 'error';
  message: string;
  at: Date;
}

export interface FundingDeps {
  db: Kysely<Database>;
  log: Logger;
  wallet: Wallet | HDNodeWallet;
  policy: FundingPolicy | null;
  gasReserveWei: bigint;
  /** Outbound events (notifications): deposit/reserve low and funding failed, per episode. */
  events?: EventSink;
}

export interface ManualRequest {
  kind: FundingKind;
  depositWei?: bigint;
  reserveWei?: bigint;
  /** fund only: the TicketBroker account to credit (fund-for); default SIGNER_FUND_FOR or self. */
  beneficiary?: string;
  /** Who asked, for the audit log (`cli`, `acct_…`). */
  actor: string;
  /**
   * fund only: the daily cap (SIGNER_MAX_PER_DAY_WEI) this transaction must stay within,
   * checked against the journal while the funding lock is held. A check made before taking the
   * lock (the API's preview and execute) is only advice: two replicas can both pass it and then
   * send one after the other. Unset: no cap (the CLI is the operator's override).
   */
  maxPerDayWei?: bigint;
}

export interface Funding {
  /** One run of the automatic policy (called after each chain poll). Never throws. */
  runPolicy(chain: Chain): Promise<PolicyOutcome>;
  lastOutcome(): PolicyOutcome;
  /** Sends one operator transaction and waits for it to be mined. */
  manual(chain: Chain, request: ManualRequest): Promise<FundingTransaction>;
  latest(): Promise<FundingTransaction | null>;
  spentLastDayWei(): Promise<bigint>;
}

export function createFunding(deps: FundingDeps): Funding {
  const { db, log, wallet, policy } = deps;
  const address = wallet.address;
  let outcome: PolicyOutcome = {
    state: policy === null ? 'disabled' : 'starting',
    message:
      policy === null
        ? 'automatic funding is off (set SIGNER_TARGET_DEPOSIT_WEI and SIGNER_TARGET_RESERVE_WEI)'
        : 'not run yet',
    at: new Date(),
  };
  let policyRunning = false;

  /** Runs `work` on one connection holding the advisory lock; null when another holds it. */
  const withLock = async <T>(work: (conn: Kysely<Database>) => Promise<T>): Promise<T | null> =>
    db.connection().execute(async (conn) => {
      if (!(await tryAdvisoryLock(conn, FUNDING_LOCK_KEY))) return null;
      try {
        return await work(conn);
      } finally {
        await advisoryUnlock(conn, FUNDING_LOCK_KEY);
      }
    });

  /** Settles what can be settled; returns the rows still in flight. */
  const reconcile = async (conn: Kysely<Database>, chain: Chain) => {
    const pending = await findPendingFunding(conn, address, chain.chainId);
    const inFlight: FundingTransaction[] = [];
    for (const row of pending) {
      if (row.status === 'intent' || row.txHash === null || row.rawTx === null) {
        // Only the lock holder writes intents and marks them sent before broadcasting, so an
        // intent seen under the lock was abandoned before anything was signed.
        await settleFunding(conn, row.id, { status: 'failed', error: 'abandoned before sending' });
        continue;
      }
      const receipt = await chain.provider.getTransactionReceipt(row.txHash);
      if (receipt !== null) {
        await settleFunding(conn, row.id, {
          status: receipt.status === 1 ? 'confirmed' : 'failed',
          blockNumber: BigInt(receipt.blockNumber),
          ...(receipt.status === 1 ? {} : { error: 'reverted' }),
        });
        log.info(
          { id: row.id, txHash: row.txHash, status: receipt.status },
          'signer: transaction settled',
        );
        continue;
      }
      if ((await chain.provider.getTransaction(row.txHash)) !== null) {
        inFlight.push(row);
        continue;
      }
      const mined = BigInt(await chain.provider.getTransactionCount(address, 'latest'));
      if (row.nonce !== null && mined > row.nonce) {
        await settleFunding(conn, row.id, {
          status: 'replaced',
          error: `nonce ${row.nonce} was used by another transaction`,
        });
        continue;
      }
      // Signed and recorded, but the node does not know it (crash before the broadcast, or a
      // node restart): send the same bytes again.
      log.warn(
        { id: row.id, txHash: row.txHash },
        'signer: rebroadcasting a journaled transaction',
      );
      await chain.provider.broadcastTransaction(row.rawTx).catch((error: unknown) => {
        log.warn(
          { id: row.id, error: String((error as Error).message).slice(0, 200) },
          'signer: rebroadcast refused',
        );
      });
      inFlight.push(row);
    }
    return inFlight;
  };

  const callData = (request: ManualRequest, beneficiary: string) =>
    operationCallData(request, address, beneficiary);

  /** intent → sign → sent → broadcast, under the lock held by the caller. */
  const send = async (
    conn: Kysely<Database>,
    chain: Chain,
    request: ManualRequest & {
      origin: 'policy' | 'manual';
      beneficiary: string;
      wantedWei?: bigint;
    },
  ): Promise<string> => {
    const id = newId('ftx');
    const depositWei = request.depositWei ?? 0n;
    const reserveWei = request.reserveWei ?? 0n;
    await insertFundingIntent(conn, {
      id,
      kind: request.kind,
      origin: request.origin,
      chainId: chain.chainId,
      fromAddress: address,
      beneficiary: request.beneficiary,
      depositWei,
      reserveWei,
      ...(request.wantedWei === undefined ? {} : { wantedWei: request.wantedWei }),
    });
    let raw: string;
    try {
      const signer = wallet.connect(chain.provider);
      // Estimates gas too: a call the contract would revert fails here, before any nonce is used.
      const populated = await signer.populateTransaction({
        to: chain.addresses.ticketBroker,
        data: callData(request, request.beneficiary),
        value: depositWei + reserveWei,
      });
      raw = await signer.signTransaction(populated);
    } catch (error) {
      const reason = revertReason(error);
      await settleFunding(conn, id, { status: 'failed', error: reason });
      throw new TransactionFailed(`The TicketBroker refused ${request.kind}: ${reason}`, {
        cause: error,
      });
    }
    const tx = Transaction.from(raw);
    await markFundingSent(conn, id, { txHash: tx.hash!, nonce: BigInt(tx.nonce), rawTx: raw });
    await recordAudit(conn, {
      actor: request.actor,
      action: `signer.${request.kind}`,
      subject: id,
      details: {
        origin: request.origin,
        txHash: tx.hash,
        nonce: tx.nonce,
        beneficiary: request.beneficiary,
        depositWei: depositWei.toString(),
        reserveWei: reserveWei.toString(),
      },
    });
    try {
      await chain.provider.broadcastTransaction(raw);
    } catch (error) {
      if (isRefusal(error)) {
        const reason = revertReason(error);
        await settleFunding(conn, id, { status: 'failed', error: reason });
        throw new TransactionFailed(`The node refused ${request.kind}: ${reason}`, {
          cause: error,
        });
      }
      // It may or may not have reached the node: the row stays `sent` and the next
      // reconciliation finds it on chain, in the mempool, or rebroadcasts it.
      log.warn({ id, txHash: tx.hash }, 'signer: broadcast outcome unknown; will reconcile');
    }
    log.info(
      { id, kind: request.kind, txHash: tx.hash, nonce: tx.nonce },
      'signer: transaction sent',
    );
    return id;
  };

  const decide = async (
    conn: Kysely<Database>,
    chain: Chain,
    p: FundingPolicy,
  ): Promise<PolicyOutcome> => {
    const at = new Date();
    const inFlight = await reconcile(conn, chain);
    if (inFlight.length > 0) {
      return {
        state: 'waiting_for_pending',
        message: `waiting for ${inFlight[0]!.txHash} to be mined`,
        at,
      };
    }
    const beneficiary = p.fundFor ?? address;
    // Fresh reads under the lock: the cached view may predate another replica's transaction.
    const [info, reserve] = (await chain.ticketBroker.getFunction('getSenderInfo')(
      beneficiary,
    )) as [[bigint, bigint], [bigint, bigint]];
    const deposit = info[0];
    const reserveWei = reserve[0];
    if (info[1] > 0n) {
      // Funding would cancel the unlock the operator started; leave it to them.
      return {
        state: 'paused_unlocking',
        message: 'an unlock is in progress: automatic funding is paused',
        at,
      };
    }
    const pct = BigInt(p.refillThresholdPercent);
    const below =
      deposit * 100n < p.targetDepositWei * pct || reserveWei * 100n < p.targetReserveWei * pct;
    // An episode lasts from one funding transaction to the next: the latest journal row names
    // it, so a low deposit is announced once, and again only after a refill (re-armed).
    const episode = (await findLatestFunding(conn, address))?.id ?? 'initial';
    const lows: OutboundEvent[] = [];
    const facts = { address: beneficiary, threshold_percent: p.refillThresholdPercent };
    if (deposit * 100n < p.targetDepositWei * pct) {
      lows.push({
        type: 'signer.deposit_low',
        accountId: null,
        key: `signer.deposit_low:${beneficiary}:${episode}`,
        data: {
          ...facts,
          deposit_wei: deposit.toString(),
          target_deposit_wei: p.targetDepositWei.toString(),
        },
      });
    }
    if (reserveWei * 100n < p.targetReserveWei * pct) {
      lows.push({
        type: 'signer.reserve_low',
        accountId: null,
        key: `signer.reserve_low:${beneficiary}:${episode}`,
        data: {
          ...facts,
          reserve_wei: reserveWei.toString(),
          target_reserve_wei: p.targetReserveWei.toString(),
        },
      });
    }
    await deps.events?.publish(conn, lows);
    // A refill a cap cut short continues to target on the next run, whichever replica runs it.
    const last = below ? null : await findLatestPolicyFunding(conn, address, beneficiary);
    const unfinished = last !== null && last.origin === 'policy' && last.valueWei < last.wantedWei;
    const short = deposit < p.targetDepositWei || reserveWei < p.targetReserveWei;
    if (!below && !(unfinished && short))
      return { state: 'idle', message: 'deposit and reserve are above the refill threshold', at };
    const wantDeposit = p.targetDepositWei > deposit ? p.targetDepositWei - deposit : 0n;
    const wantReserve = p.targetReserveWei > reserveWei ? p.targetReserveWei - reserveWei : 0n;
    const want = wantDeposit + wantReserve;
    const spent = await sumFundingLastDay(conn, address);
    const dayLeft = p.maxPerDayWei > spent ? p.maxPerDayWei - spent : 0n;
    const balance = await chain.provider.getBalance(address);
    const spendable = balance > deps.gasReserveWei ? balance - deps.gasReserveWei : 0n;
    const allowed = [want, p.maxPerTxWei, dayLeft, spendable].reduce((a, b) => (b < a ? b : a));
    if (allowed === 0n) {
      await deps.events?.publish(conn, [
        {
          type: 'signer.funding_failed',
          accountId: null,
          key: `signer.funding_failed:${beneficiary}:${episode}:${dayLeft === 0n ? 'capped' : 'insufficient_eth'}`,
          data: {
            address: beneficiary,
            reason: dayLeft === 0n ? 'daily_cap_reached' : 'insufficient_eth',
            wanted_wei: want.toString(),
            eth_balance_wei: balance.toString(),
          },
        },
      ]);
      return dayLeft === 0n
        ? { state: 'capped', message: `the daily cap (${p.maxPerDayWei} wei) is used up`, at }
        : {
            state: 'insufficient_eth',
            message: `the ETH balance is at or below the gas reserve (${deps.gasReserveWei} wei)`,
            at,
          };
    }
    // Short of the full top-up, both grow in proportion: tickets need a deposit and a reserve.
    const depositPart = allowed === want ? wantDeposit : (wantDeposit * allowed) / want;
    const id = await send(conn, chain, {
      kind: 'fund',
      origin: 'policy',
      actor: 'system',
      beneficiary,
      depositWei: depositPart,
      reserveWei: allowed - depositPart,
      wantedWei: want,
    });
    return { state: 'sent', message: `sent ${allowed} wei (${id})`, at };
  };

  const settlePending = async (chain: Chain) => {
    if ((await findPendingFunding(db, address, chain.chainId)).length === 0) return;
    await withLock((conn) => reconcile(conn, chain));
  };

  return {
    async runPolicy(chain) {
      if (policyRunning) return outcome;
      if (policy === null) {
        // No automatic funding, but a manual transaction whose command stopped waiting (or
        // died) is still settled here, so the status shows how it ended.
        await settlePending(chain).catch((error: unknown) => {
          log.warn(
            { error: String((error as Error).message).slice(0, 300) },
            'signer: reconcile failed',
          );
        });
        return outcome;
      }
      policyRunning = true;
      const previous = outcome.state;
      try {
        outcome = (await withLock((conn) => decide(conn, chain, policy))) ?? {
          state: 'not_leader',
          message: 'another replica holds the funding lock',
          at: new Date(),
        };
      } catch (error) {
        log.warn(
          { error: String((error as Error).message).slice(0, 300) },
          'signer: funding run failed',
        );
        outcome = {
          state: 'error',
          message: String((error as Error).message).slice(0, 300),
          at: new Date(),
        };
      } finally {
        policyRunning = false;
      }
      if (outcome.state !== previous) {
        log.info({ state: outcome.state, message: outcome.message }, 'signer: funding state');
      }
      return outcome;
    },
    lastOutcome: () => outcome,
    async manual(chain, request) {
      const beneficiary =
        request.kind === 'fund' ? (request.beneficiary ?? policy?.fundFor ?? address) : address;
      const deadline = Date.now() + LOCK_WAIT_MS;
      let id: string;
      for (;;) {
        const result = await withLock(async (conn) => {
          const inFlight = await reconcile(conn, chain);
          if (inFlight.length > 0) {
            throw new SignerBusy(
              `Transaction ${inFlight[0]!.txHash} is still pending; try again once it is mined`,
            );
          }
          if (request.kind === 'fund' && request.maxPerDayWei !== undefined) {
            // Under the lock, so every transaction counted here is already in the journal and
            // none can be written before this one is.
            const spent = await sumFundingLastDay(conn, address);
            const value = (request.depositWei ?? 0n) + (request.reserveWei ?? 0n);
            if (spent + value > request.maxPerDayWei) {
              throw new OperationRefused(
                'CapExceeded',
                `Over max_per_day: SIGNER_MAX_PER_DAY_WEI: funding sends at most ${request.maxPerDayWei} wei in any 24 hours (${spent} wei sent so far, automatic and manual)`,
                { details: { caps: ['max_per_day'] } },
              );
            }
          }
          return send(conn, chain, { ...request, origin: 'manual', beneficiary });
        });
        if (result !== null) {
          id = result;
          break;
        }
        if (Date.now() > deadline) throw new SignerBusy('Another process holds the funding lock');
        await new Promise((r) => setTimeout(r, CONFIRM_POLL_MS));
      }
      const confirmDeadline = Date.now() + CONFIRM_TIMEOUT_MS;
      for (;;) {
        const row = await findFundingById(db, id);
        if (row === null) throw new Error(`journal row ${id} disappeared`);
        if (row.status !== 'sent' && row.status !== 'intent') return row;
        const receipt = await chain.provider.getTransactionReceipt(row.txHash!).catch(() => null);
        if (receipt !== null) {
          await settleFunding(db, id, {
            status: receipt.status === 1 ? 'confirmed' : 'failed',
            blockNumber: BigInt(receipt.blockNumber),
            ...(receipt.status === 1 ? {} : { error: 'reverted' }),
          });
          continue;
        }
        if (Date.now() > confirmDeadline) return row;
        await new Promise((r) => setTimeout(r, CONFIRM_POLL_MS));
      }
    },
    latest: () => findLatestFunding(db, address),
    spentLastDayWei: () => sumFundingLastDay(db, address),
  };
}

/** The TicketBroker call of one operator transaction (also estimated by a preview). */
export function operationCallData(
  request: Pick<ManualRequest, 'kind' | 'depositWei' | 'reserveWei'>,
  self: string,
  beneficiary: string,
): string {
  const d = request.depositWei ?? 0n;
  const r = request.reserveWei ?? 0n;
  switch (request.kind) {
    case 'fund':
      return beneficiary === self
        ? ticketBrokerInterface.encodeFunctionData('fundDepositAndReserve', [d, r])
        : ticketBrokerInterface.encodeFunctionData('fundDepositAndReserveFor', [beneficiary, d, r]);
    case 'unlock':
      return ticketBrokerInterface.encodeFunctionData('unlock', []);
    case 'cancel_unlock':
      return ticketBrokerInterface.encodeFunctionData('cancelUnlock', []);
    case 'withdraw':
      return ticketBrokerInterface.encodeFunctionData('withdraw', []);
  }
}

/** The contract's revert reason or the node's message, short and without request details. */
function revertReason(error: unknown): string {
  const e = error as { reason?: string | null; shortMessage?: string; message?: string };
  return String(e.reason ?? e.shortMessage ?? e.message ?? error).slice(0, 300);
}

/** The node answered and said no (as opposed to a network failure with an unknown outcome). */
function isRefusal(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return (
    code === 'INSUFFICIENT_FUNDS' ||
    code === 'NONCE_EXPIRED' ||
    code === 'REPLACEMENT_UNDERPRICED' ||
    code === 'CALL_EXCEPTION' ||
    (code === 'UNKNOWN_ERROR' && (error as { error?: unknown }).error !== undefined)
  );
}
