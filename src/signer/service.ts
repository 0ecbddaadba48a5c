// The signer as the rest of the service sees it: the keystore account (decrypted once), the
// chain view, the funding journal and policy, the status every surface shows (CLI, GET
// /v1/signer), and Prometheus gauges.
import type { HDNodeWallet, Wallet } from 'ethers';
import { Gauge } from 'prom-client';
import type { Kysely } from 'kysely';
import type { EventSink } from '../platform/events.ts';
import type { Config } from '../config.ts';
import type { Database } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import type { Metrics } from '../platform/metrics.ts';
import { systemClock } from '../platform/clock.ts';
import type { Clock } from '../platform/clock.ts';
import { createChainView } from './chain.ts';
import type {
  ChainSnapshot,
  ChainView,
  ContractAddresses,
  RpcStatus,
  SenderInfo,
} from './chain.ts';
import { SignerUnavailable } from './errors.ts';
import { createFunding } from './funding.ts';
import type { Funding, ManualRequest, PolicyOutcome } from './funding.ts';
import { openKeystore } from './keystore.ts';
import { createOperations } from './operations.ts';
import type { OperationPreview, OperationRequest, OperationResult } from './operations.ts';
import { createMessageSigner, createSigningPool } from './signing.ts';
import { countFailedFundingLastDay, pageFunding } from './queries.ts';
import type { FundingTransaction } from './queries.ts';
import type { FundingKind } from './table.ts';

/** What the remote-signer protocol (part 2) signs with. Never exposes the private key. */
export interface PaymentSigner {
  /** EIP-55 checksummed address of the keystore account. */
  readonly address: string;
  /** EIP-191 personal-sign of the bytes `message`: 65 bytes R‖S‖V, V 27/28, low S (./signing.ts). */
  signMessage(message: Uint8Array): Uint8Array;
  /** The same for several messages, on the signing threads when SIGNER_SIGNING_THREADS > 0. */
  signMessages(messages: Uint8Array[]): Promise<Uint8Array[]>;
}

export interface SignerStatus {
  enabled: boolean;
  /** Why the signer is disabled, when it is: the causes (`ETH_RPC_URL is not set; …`). */
  reason: string | null;
  address: string | null;
  beneficiary: string | null;
  chainId: bigint | null;
  contracts: ContractAddresses | null;
  rpc: RpcStatus | null;
  view: ChainSnapshot | null;
  funding: {
    policy: Config['signer']['funding'];
    gasReserveWei: bigint;
    spentLastDayWei: bigint;
    lastRun: PolicyOutcome;
    lastTransaction: FundingTransaction | null;
  } | null;
  /** Things an operator should act on; GET /readyz is not failed by them (docs/signer.md). */
  warnings: string[];
}

export interface Signer {
  readonly enabled: boolean;
  /** The signing account, or null without a keystore. */
  paymentSigner(): PaymentSigner | null;
  /** The cached chain view, or null before the first read (or without a chain). */
  snapshot(): ChainSnapshot | null;
  status(): Promise<SignerStatus>;
  /** The funding journal, newest first; null when `before` names no transaction. */
  fundingHistory(before: string | null, limit: number): Promise<FundingTransaction[] | null>;
  /** Reads the chain now (CLI commands); throws SignerUnavailable when disabled or unreachable. */
  refresh(): Promise<ChainSnapshot>;
  /** One operator transaction, journaled and audited; waits until it is mined. */
  operate(request: ManualRequest): Promise<FundingTransaction>;
  /** Step one over the API: what an operation would do and cost, and its confirmation token. */
  preview(request: OperationRequest): Promise<OperationPreview>;
  /** Step two: sends the previewed operation once, however often the token is presented. */
  execute(kind: FundingKind, token: string, actor: string): Promise<OperationResult>;
  /** Starts the chain poll and the funding policy (serve only). */
  start(): void;
  stop(): Promise<void>;
}

export interface SignerServiceDeps {
  config: Config['signer'];
  db: Kysely<Database>;
  log: Logger;
  metrics?: Metrics;
  /** Outbound events (notifications), for the funding policy's alerts. */
  events?: EventSink;
  clock?: Clock;
}

export async function createSignerService(deps: SignerServiceDeps): Promise<Signer> {
  const { config, db } = deps;
  const log = deps.log.child({ capability: 'signer' });
  const missing = [
    config.rpcUrl === null ? 'ETH_RPC_URL is not set' : null,
    config.keystoreFile === null ? 'SIGNER_KEYSTORE_FILE is not set' : null,
  ].filter((m): m is string => m !== null);
  // Why the signer is disabled (the status's `reason`: the causes alone, so a page can say
  // "The signer is disabled: …" once), and the line that says so in the log and warnings.
  const why = missing.length > 0 ? missing.join('; ') : null;
  const reason = why === null ? null : `signer disabled: ${why}`;

  let wallet: Wallet | HDNodeWallet | null = null;
  if (config.keystoreFile !== null) {
    // config.ts guarantees a password with a keystore file.
    wallet = await openKeystore(config.keystoreFile, config.password ?? '');
    log.info({ address: wallet.address }, 'signer: keystore opened');
  }
  const beneficiary = config.funding?.fundFor ?? wallet?.address ?? null;
  const funding: Funding | null =
    wallet === null
      ? null
      : createFunding({
          db,
          log,
          wallet,
          policy: config.funding,
          gasReserveWei: config.gasReserveWei,
          events: deps.events,
        });
  const view: ChainView | null =
    wallet === null || config.rpcUrl === null
      ? null
      : createChainView({
          rpcUrl: config.rpcUrl,
          controller: config.controller,
          address: wallet.address,
          beneficiary: beneficiary ?? wallet.address,
          pollIntervalMs: config.pollIntervalMs,
          refreshIntervalMs: config.refreshIntervalMs,
          log,
          afterPoll: async (chain) => {
            await funding?.runPolicy(chain);
          },
        });
  if (reason !== null) log.info(reason);

  const pool = wallet === null ? null : createSigningPool(wallet.privateKey, config.signingThreads);
  const paymentSigner: PaymentSigner | null =
    wallet === null || pool === null
      ? null
      : {
          address: wallet.address,
          signMessage: createMessageSigner(wallet.privateKey),
          signMessages: (messages) => pool.sign(messages),
        };

  const warningsOf = (
    snapshot: ChainSnapshot | null,
    rpc: RpcStatus | null,
    run: PolicyOutcome | null,
  ) => {
    const warnings: string[] = [];
    if (reason !== null) return [reason];
    if (rpc !== null && rpc.state === 'unreachable') {
      warnings.push(
        `the Ethereum RPC endpoint is unreachable (${rpc.consecutiveFailures} failures): ${rpc.lastError ?? ''}`,
      );
    }
    if (snapshot === null) {
      warnings.push('no chain view yet');
      return warnings;
    }
    const p = config.funding;
    const target = snapshot.beneficiary;
    const floor = (amount: bigint) =>
      p === null ? 1n : (amount * BigInt(p.refillThresholdPercent)) / 100n;
    const depositFloor = floor(p?.targetDepositWei ?? 0n);
    const reserveFloor = floor(p?.targetReserveWei ?? 0n);
    if (target.depositWei < depositFloor) {
      warnings.push(`deposit ${target.depositWei} wei is below its floor of ${depositFloor} wei`);
    }
    if (target.reserveWei < reserveFloor) {
      warnings.push(`reserve ${target.reserveWei} wei is below its floor of ${reserveFloor} wei`);
    }
    if (snapshot.ethWei < config.gasReserveWei) {
      warnings.push(
        `ETH balance ${snapshot.ethWei} wei is below the gas reserve of ${config.gasReserveWei} wei`,
      );
    }
    for (const sender of new Set([snapshot.sender, snapshot.beneficiary])) {
      if (sender.unlockInProgress) {
        warnings.push(
          `an unlock of ${sender.address} is in progress: withdrawable from round ${sender.withdrawRound}`,
        );
      }
    }
    if (
      run !== null &&
      (run.state === 'capped' || run.state === 'insufficient_eth' || run.state === 'error')
    ) {
      warnings.push(`funding: ${run.message}`);
    }
    return warnings;
  };

  if (deps.metrics !== undefined) {
    registerGauges(
      deps.metrics,
      () => view?.snapshot() ?? null,
      () =>
        warningsOf(
          view?.snapshot() ?? null,
          view?.rpcStatus() ?? null,
          funding?.lastOutcome() ?? null,
        ).length,
    );
    registerFundingGauges(deps.metrics, {
      policy: config.funding,
      failedLastDay: async () =>
        wallet === null ? 0 : countFailedFundingLastDay(db, wallet.address),
      blocked: () => {
        const state = funding?.lastOutcome().state;
        return state === 'capped' || state === 'insufficient_eth' || state === 'error';
      },
      log,
    });
  }

  const requireView = () => {
    if (view === null)
      throw new SignerUnavailable(`The payment signer is disabled: ${missing.join('; ')}`);
    return view;
  };

  const refresh = async () => {
    const v = requireView();
    try {
      return await v.refresh();
    } catch (error) {
      throw new SignerUnavailable(
        `Cannot read the chain: ${String((error as Error).message).slice(0, 200)}`,
        {
          cause: error,
        },
      );
    }
  };

  const operate = async (request: ManualRequest) => {
    const v = requireView();
    await refresh();
    const result = await funding!.manual(v.chain()!, request);
    await v.refresh().catch(() => undefined);
    return result;
  };
  const operations =
    wallet === null
      ? null
      : createOperations({
          db,
          clock: deps.clock ?? systemClock,
          address: wallet.address,
          policy: config.funding,
          gasReserveWei: config.gasReserveWei,
          chain: async () => {
            await refresh();
            return requireView().chain()!;
          },
          spentLastDayWei: () => funding!.spentLastDayWei(),
          operate,
        });
  const requireOperations = () => {
    requireView();
    return operations!;
  };

  return {
    enabled: reason === null,
    paymentSigner: () => paymentSigner,
    snapshot: () => view?.snapshot() ?? null,
    async status() {
      const snapshot = view?.snapshot() ?? null;
      const rpc = view?.rpcStatus() ?? null;
      const chain = view?.chain() ?? null;
      const run = funding?.lastOutcome() ?? null;
      return {
        enabled: reason === null,
        reason: why,
        address: wallet?.address ?? null,
        beneficiary,
        chainId: chain?.chainId ?? snapshot?.chainId ?? null,
        contracts: chain?.addresses ?? null,
        rpc,
        view: snapshot,
        funding:
          funding === null || run === null
            ? null
            : {
                policy: config.funding,
                gasReserveWei: config.gasReserveWei,
                spentLastDayWei: await funding.spentLastDayWei(),
                lastRun: run,
                lastTransaction: await funding.latest(),
              },
        warnings: warningsOf(snapshot, rpc, run),
      };
    },
    // Every row of the journal, whichever key wrote it: history survives a key rotation.
    fundingHistory: (before, limit) => pageFunding(db, before, limit),
    refresh,
    operate,
    preview: (request) => requireOperations().preview(request),
    execute: (kind, token, actor) => requireOperations().execute(kind, token, actor),
    start() {
      view?.start();
    },
    async stop() {
      await view?.stop();
      await pool?.close();
    },
  };
}

/** Gauges read the cached view at scrape time. Wei become float64: exact to ~1e-16 relative. */
function registerGauges(
  metrics: Metrics,
  snapshot: () => ChainSnapshot | null,
  warnings: () => number,
) {
  const gauge = (name: string, help: string, read: (s: ChainSnapshot) => bigint) =>
    new Gauge({
      name,
      help,
      registers: [metrics.registry],
      collect() {
        const s = snapshot();
        if (s !== null) this.set(Number(read(s)));
      },
    });
  gauge(
    'tollhouse_signer_deposit_wei',
    'TicketBroker deposit of the funded account (wei)',
    (s) => s.beneficiary.depositWei,
  );
  gauge(
    'tollhouse_signer_reserve_wei',
    'TicketBroker reserve of the funded account (wei)',
    (s) => s.beneficiary.reserveWei,
  );
  gauge('tollhouse_signer_eth_wei', 'ETH balance of the signer account (wei)', (s) => s.ethWei);
  new Gauge({
    name: 'tollhouse_signer_warnings',
    help: 'Number of signer warnings (balance below floor, unlock in progress, RPC unreachable); see GET /v1/signer',
    registers: [metrics.registry],
    collect() {
      this.set(warnings());
    },
  });
}

/** What the alert rules compare against (deploy/prometheus/tollhouse-rules.yml). */
function registerFundingGauges(
  metrics: Metrics,
  deps: {
    policy: Config['signer']['funding'];
    failedLastDay: () => Promise<number>;
    blocked: () => boolean;
    log: Logger;
  },
) {
  const registers = [metrics.registry];
  const floor = (target: bigint, percent: number) => Number((target * BigInt(percent)) / 100n);
  // Without a policy there is no floor: the gauges stay absent rather than report 0.
  new Gauge({
    name: 'tollhouse_signer_deposit_floor_wei',
    help: 'Deposit below which the funding policy refills (SIGNER_TARGET_DEPOSIT_WEI × SIGNER_REFILL_THRESHOLD_PERCENT)',
    registers,
    collect() {
      const p = deps.policy;
      if (p !== null) this.set(floor(p.targetDepositWei, p.refillThresholdPercent));
    },
  });
  new Gauge({
    name: 'tollhouse_signer_reserve_floor_wei',
    help: 'Reserve below which the funding policy refills (SIGNER_TARGET_RESERVE_WEI × SIGNER_REFILL_THRESHOLD_PERCENT)',
    registers,
    collect() {
      const p = deps.policy;
      if (p !== null) this.set(floor(p.targetReserveWei, p.refillThresholdPercent));
    },
  });
  new Gauge({
    name: 'tollhouse_signer_funding_failed_last_day',
    help: 'Funding journal rows (policy and manual) that failed in the last 24 hours',
    registers,
    async collect() {
      try {
        this.set(await deps.failedLastDay());
      } catch (error) {
        deps.log.warn({ err: error }, 'could not count failed funding transactions');
      }
    },
  });
  new Gauge({
    name: 'tollhouse_signer_funding_blocked',
    help: '1 when the last funding policy run could not fund (daily cap used up, ETH at the gas reserve, or an error)',
    registers,
    collect() {
      this.set(deps.blocked() ? 1 : 0);
    },
  });
}

export type { SenderInfo };
