// The signer's view of the chain: contract addresses resolved through the Controller, and a
// cached snapshot (sender info, rounds, L1 block, ETH balance) that remote-signer requests can
// read without a round trip. Refreshed on a timer, and at once when a TicketBroker event names
// one of our accounts. RPC failures never throw out of the loop: they back off exponentially
// and show in `rpcStatus()`.
import {
  Contract,
  FetchRequest,
  JsonRpcProvider,
  Network,
  ZeroAddress,
  id,
  zeroPadValue,
} from 'ethers';
import type { Logger } from '../platform/log.ts';
import {
  CONTROLLER_ABI,
  ROUNDS_MANAGER_ABI,
  SENDER_EVENT_TOPICS,
  TICKET_BROKER_ABI,
} from './contracts.ts';

// One RPC call may not hang the loop: hosted endpoints answer in well under a second.
const RPC_TIMEOUT_MS = 10_000;
// Backoff ceiling while the RPC endpoint is down: a minute keeps the load on a struggling
// endpoint negligible and the view at most a minute late once it is back.
const MAX_BACKOFF_MS = 60_000;
const MAX_LOG_RANGE_BLOCKS = 1_000n;

export interface SenderInfo {
  address: string;
  depositWei: bigint;
  /** 0 when no unlock is in progress. */
  withdrawRound: bigint;
  reserveWei: bigint;
  claimedInCurrentRoundWei: bigint;
  unlockInProgress: boolean;
}

export interface ContractAddresses {
  controller: string;
  ticketBroker: string;
  roundsManager: string;
  bondingManager: string;
}

/** What the remote-signer protocol needs to check and build tickets (LIVEPEER.md §3.4). */
export interface ChainSnapshot {
  chainId: bigint;
  blockNumber: bigint;
  /** Arbitrum's `l1BlockNumber` of the latest block; elsewhere the block number. */
  l1BlockNumber: bigint;
  ethWei: bigint;
  /** The signer account's own TicketBroker state. */
  sender: SenderInfo;
  /** SIGNER_FUND_FOR's state when set, else the same as `sender`. */
  beneficiary: SenderInfo;
  currentRound: bigint;
  lastInitializedRound: bigint;
  lastInitializedRoundBlockHash: string;
  unlockPeriodRounds: bigint;
  ticketValidityRounds: bigint;
  refreshedAt: Date;
}

export interface RpcStatus {
  state: 'connecting' | 'ok' | 'unreachable';
  consecutiveFailures: number;
  lastError: string | null;
  lastSuccessAt: Date | null;
  nextRetryAt: Date | null;
}

export interface Chain {
  provider: JsonRpcProvider;
  addresses: ContractAddresses;
  ticketBroker: Contract;
  roundsManager: Contract;
  chainId: bigint;
}

export interface ChainViewOptions {
  rpcUrl: string;
  controller: string;
  address: string;
  beneficiary: string;
  pollIntervalMs: number;
  refreshIntervalMs: number;
  log: Logger;
  /** Called after each successful poll (the funding policy runs here). */
  afterPoll?: (chain: Chain, snapshot: ChainSnapshot) => Promise<void>;
}

export interface ChainView {
  start(): void;
  stop(): Promise<void>;
  /** The last snapshot, or null before the first successful read. */
  snapshot(): ChainSnapshot | null;
  rpcStatus(): RpcStatus;
  /** The connected chain, or null while the RPC endpoint has not answered yet. */
  chain(): Chain | null;
  /** Connects if needed and reads everything now; throws on RPC failure. */
  refresh(): Promise<ChainSnapshot>;
}

export function createChainView(options: ChainViewOptions): ChainView {
  const { log } = options;
  let chain: Chain | null = null;
  let snapshot: ChainSnapshot | null = null;
  let lastBlock: bigint | null = null;
  const rpc: RpcStatus = {
    state: 'connecting',
    consecutiveFailures: 0,
    lastError: null,
    lastSuccessAt: null,
    nextRetryAt: null,
  };
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let stopped = true;

  const describe = (error: unknown): string => {
    const e = error as { shortMessage?: string; code?: string; message?: string };
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    const text = [e.code, cause, e.shortMessage ?? e.message].filter(Boolean).join(': ');
    // The URL can carry the RPC provider's API key: never show it.
    return text.split(options.rpcUrl).join('<ETH_RPC_URL>').slice(0, 300);
  };

  const connect = async (): Promise<Chain> => {
    const request = new FetchRequest(options.rpcUrl);
    request.timeout = RPC_TIMEOUT_MS;
    // eth_chainId by hand: an ethers provider without a known network would retry its own
    // network detection forever (logging to the console) while the endpoint is down.
    const probe = request.clone();
    probe.body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] });
    probe.setHeader('content-type', 'application/json');
    const response = await probe.send();
    response.assertOk();
    const answer = response.bodyJson as { result?: string; error?: { message?: string } };
    if (typeof answer.result !== 'string') {
      throw new Error(`eth_chainId failed: ${answer.error?.message ?? 'no result'}`);
    }
    const chainId = BigInt(answer.result);
    // A fixed network: ethers never re-probes (and never logs to the console) when calls fail.
    const network = Network.from(chainId);
    const provider = new JsonRpcProvider(request, network, {
      staticNetwork: network,
      cacheTimeout: -1,
      batchMaxCount: 1,
    });
    try {
      const controller = new Contract(options.controller, CONTROLLER_ABI, provider);
      const resolve = async (name: string) => {
        const address = (await controller.getFunction('getContract')(id(name))) as string;
        if (address === ZeroAddress) {
          throw new Error(`the Controller at ${options.controller} has no ${name}`);
        }
        return address;
      };
      const addresses: ContractAddresses = {
        controller: options.controller,
        ticketBroker: await resolve('TicketBroker'),
        roundsManager: await resolve('RoundsManager'),
        bondingManager: await resolve('BondingManager'),
      };
      return {
        provider,
        addresses,
        chainId,
        ticketBroker: new Contract(addresses.ticketBroker, TICKET_BROKER_ABI, provider),
        roundsManager: new Contract(addresses.roundsManager, ROUNDS_MANAGER_ABI, provider),
      };
    } catch (error) {
      provider.destroy();
      throw error;
    }
  };

  const readSender = async (c: Chain, address: string): Promise<SenderInfo> => {
    const [sender, reserve] = (await c.ticketBroker.getFunction('getSenderInfo')(address)) as [
      [bigint, bigint],
      [bigint, bigint],
    ];
    return {
      address,
      depositWei: sender[0],
      withdrawRound: sender[1],
      reserveWei: reserve[0],
      claimedInCurrentRoundWei: reserve[1],
      // The TicketBroker's isUnlockInProgress is withdrawRound > 0, and withdraw() leaves
      // withdrawRound set (protocol MixinTicketBrokerCore.withdraw; the next funding cancels
      // it): an emptied account has nothing left to unlock, so it is not reported as unlocking.
      unlockInProgress: sender[1] > 0n && (sender[0] > 0n || reserve[0] > 0n),
    };
  };

  const latestBlock = async (c: Chain) => {
    const block = (await c.provider.send('eth_getBlockByNumber', ['latest', false])) as {
      number: string;
      l1BlockNumber?: string;
    };
    const number = BigInt(block.number);
    return { number, l1: block.l1BlockNumber ? BigInt(block.l1BlockNumber) : number };
  };

  const readAll = async (c: Chain): Promise<ChainSnapshot> => {
    const rm = c.roundsManager;
    const [
      block,
      sender,
      beneficiary,
      currentRound,
      lastInitializedRound,
      ethWei,
      unlock,
      validity,
    ] = await Promise.all([
      latestBlock(c),
      readSender(c, options.address),
      options.beneficiary === options.address ? null : readSender(c, options.beneficiary),
      rm.getFunction('currentRound')() as Promise<bigint>,
      rm.getFunction('lastInitializedRound')() as Promise<bigint>,
      c.provider.getBalance(options.address),
      snapshot?.unlockPeriodRounds ??
        (c.ticketBroker.getFunction('unlockPeriod')() as Promise<bigint>),
      snapshot?.ticketValidityRounds ??
        (c.ticketBroker.getFunction('ticketValidityPeriod')() as Promise<bigint>),
    ]);
    const roundHash = (await rm.getFunction('blockHashForRound')(lastInitializedRound)) as string;
    lastBlock = block.number;
    return {
      chainId: c.chainId,
      blockNumber: block.number,
      l1BlockNumber: block.l1,
      ethWei,
      sender,
      beneficiary: beneficiary ?? sender,
      currentRound,
      lastInitializedRound,
      lastInitializedRoundBlockHash: roundHash,
      unlockPeriodRounds: unlock,
      ticketValidityRounds: validity,
      refreshedAt: new Date(),
    };
  };

  /** One poll: a new block with an event for our accounts, or a stale view, re-reads all. */
  const poll = async (c: Chain): Promise<ChainSnapshot> => {
    const current = snapshot;
    if (
      current === null ||
      Date.now() - current.refreshedAt.getTime() >= options.refreshIntervalMs
    ) {
      return readAll(c);
    }
    const block = await latestBlock(c);
    // After a long outage the block range would exceed what RPC providers serve in one
    // eth_getLogs (often 10 000 blocks): re-read everything instead.
    if (lastBlock === null || block.number - lastBlock > MAX_LOG_RANGE_BLOCKS) return readAll(c);
    if (block.number > lastBlock) {
      const accounts = [...new Set([options.address, options.beneficiary])].map((a) =>
        zeroPadValue(a, 32),
      );
      const logs = await c.provider.getLogs({
        address: c.addresses.ticketBroker,
        fromBlock: lastBlock + 1n,
        toBlock: block.number,
        topics: [SENDER_EVENT_TOPICS, accounts],
      });
      if (logs.length > 0) return readAll(c);
    }
    lastBlock = block.number;
    return { ...current, blockNumber: block.number, l1BlockNumber: block.l1 };
  };

  // Reads can overlap (the poll timer and an operator's refresh after a transaction): a read
  // that started earlier must not overwrite the snapshot of one that started later.
  let readsStarted = 0;
  let readApplied = 0;
  const once = async (full: boolean): Promise<ChainSnapshot> => {
    const read = ++readsStarted;
    const appliedAtStart = readApplied;
    chain ??= await connect();
    const next = full ? await readAll(chain) : await poll(chain);
    // A poll that found no events returns the snapshot it started from with a newer block: if
    // another read (an operator's refresh after a transaction) was applied meanwhile, that one
    // is newer and the poll's copy must not overwrite it.
    if (read > readApplied && (full || readApplied === appliedAtStart)) {
      readApplied = read;
      snapshot = next;
    }
    return snapshot ?? next;
  };

  const tick = async () => {
    let delay = options.pollIntervalMs;
    try {
      const next = await once(false);
      if (rpc.state !== 'ok')
        log.info({ chainId: String(next.chainId) }, 'signer: chain reachable');
      rpc.state = 'ok';
      rpc.consecutiveFailures = 0;
      rpc.lastError = null;
      rpc.lastSuccessAt = new Date();
      rpc.nextRetryAt = null;
      if (options.afterPoll && chain) await options.afterPoll(chain, next);
    } catch (error) {
      rpc.consecutiveFailures += 1;
      rpc.lastError = describe(error);
      rpc.state = 'unreachable';
      delay = Math.min(options.pollIntervalMs * 2 ** rpc.consecutiveFailures, MAX_BACKOFF_MS);
      rpc.nextRetryAt = new Date(Date.now() + delay);
      log.warn(
        { failures: rpc.consecutiveFailures, retryInMs: delay, error: rpc.lastError },
        'signer: chain read failed; retrying',
      );
    }
    if (!stopped) {
      timer = setTimeout(() => {
        running = tick();
      }, delay);
    }
  };

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      running = tick();
    },
    async stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      await running;
      chain?.provider.destroy();
      chain = null;
    },
    snapshot: () => snapshot,
    rpcStatus: () => ({ ...rpc }),
    chain: () => chain,
    refresh: () => once(true),
  };
}
