// A real Ethereum chain for tests: `anvil` from the npm package @foundry-rs/anvil-linux-amd64
// (a prebuilt binary in bin/anvil, no install script), started on a free port and killed after;
// plus the real Livepeer protocol contracts (./contracts/livepeer-artifacts.ts) deployed
// behind their Controller as the protocol's own unit tests deploy them (deployLivepeer).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import path from 'node:path';
import { ContractFactory, JsonRpcProvider, Network, NonceManager, Wallet, id } from 'ethers';
import type { Contract } from 'ethers';
import { livepeerArtifacts } from './contracts/livepeer-artifacts.ts';
import type { ArtifactName } from './contracts/livepeer-artifacts.ts';
import { freePort } from './process.ts';
import { eventually } from './eventually.ts';

const require = createRequire(import.meta.url);
const ANVIL = path.join(
  path.dirname(require.resolve('@foundry-rs/anvil-linux-amd64/package.json')),
  'bin',
  'anvil',
);

/** anvil's first default account (mnemonic "test test … junk"): deploys the contracts. */
export const DEPLOYER_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
export const CHAIN_ID = 31337;

/**
 * How tests wait for something on the chain (a funding transaction, a chain view): it moves
 * at block pace, so every 100 ms is often enough without loading anvil with calls, and a wait
 * that has not ended after 45 s says what it was waiting for rather than hitting the test's
 * own time limit. Use with eventually: `eventually(probe, { ...CHAIN_POLL, what })`.
 */
export const CHAIN_POLL = { intervalMs: 100, timeoutMs: 45_000 };

export interface Anvil {
  url: string;
  port: number;
  provider: JsonRpcProvider;
  rpc<T = unknown>(method: string, params?: unknown[]): Promise<T>;
  /** Mines one block (also when automine is off). */
  mine(): Promise<void>;
  setAutomine(on: boolean): Promise<void>;
  setBalance(address: string, wei: bigint): Promise<void>;
  stop(): Promise<void>;
}

export async function startAnvil(): Promise<Anvil> {
  const port = await freePort();
  const child = spawn(
    ANVIL,
    ['--host', '127.0.0.1', '--port', String(port), '--chain-id', String(CHAIN_ID), '--silent'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const rpc = async <T>(method: string, params: unknown[] = []): Promise<T> => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
    const body = (await response.json()) as { result?: T; error?: { message: string } };
    if (body.error) throw new Error(`${method}: ${body.error.message}`);
    return body.result as T;
  };
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`anvil exited: ${stderr}`);
    await rpc('eth_chainId');
  });
  const network = Network.from(CHAIN_ID);
  const provider = new JsonRpcProvider(url, network, {
    staticNetwork: network,
    cacheTimeout: -1,
    pollingInterval: 100,
  });
  return {
    url,
    port,
    provider,
    rpc,
    async mine() {
      await rpc('evm_mine');
    },
    async setAutomine(on) {
      await rpc('evm_setAutomine', [on]);
    },
    async setBalance(address, wei) {
      await rpc('anvil_setBalance', [address, `0x${wei.toString(16)}`]);
    },
    async stop() {
      provider.destroy();
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

async function waitFor(probe: () => Promise<unknown>, timeoutMs = 60_000): Promise<void> {
  await eventually(async () => (await probe(), true), {
    timeoutMs,
    intervalMs: 100,
    what: 'anvil to answer',
    stopOn: (error) => String(error).includes('anvil exited'),
  });
}

export interface Livepeer {
  controller: string;
  ticketBroker: Contract;
  /** A GenericMock answering for RoundsManager (see deployLivepeer). */
  roundsManager: Contract;
  /** A GenericMock answering for BondingManager. */
  bondingManager: string;
  /** The real Minter: holds the deposits and reserves and pays withdrawals. */
  minter: string;
  /** The current round (the mock's answer). */
  round(): bigint;
  /** Moves the mock RoundsManager to the next round, initialized, with its own block hash. */
  advanceRound(): Promise<void>;
}

export interface DeployOptions {
  unlockPeriodRounds?: bigint;
  ticketValidityRounds?: bigint;
}

// The first round of a test chain: any positive number (round 0 would make the signer's
// expiration params "unset" in go-livepeer's sense).
const FIRST_ROUND = 100n;

/** The block hash the mock RoundsManager reports for a round: any non-zero 32 bytes. */
export function roundBlockHash(round: bigint): string {
  return id(`round ${round}`);
}

/**
 * The real Controller, TicketBroker and Minter bytecode from @livepeer/sdk, wired the way the
 * protocol's own unit tests wire TicketBroker (test/unit/TicketBroker.js): the Controller
 * starts paused and is unpaused; TicketBroker is registered under "TicketBroker" and, as on
 * the live networks, under "JobsManager", which is the caller Minter.depositETH and
 * Minter.trustedWithdrawETH accept (so deposits really move ETH into the Minter and
 * withdrawals really pay the sender back); RoundsManager and BondingManager are GenericMocks
 * whose answers are preset (currentRound, lastInitializedRound, currentRoundInitialized,
 * blockHashForRound; isActiveTranscoder, getTranscoderPoolSize). A winning ticket's face value
 * goes to BondingManager.updateTranscoderWithFees — a no-op on the mock — so a redemption
 * shows as the sender's deposit (then reserve) going down and WinningTicketRedeemed /
 * WinningTicketTransfer events, not as ETH in the orchestrator's account.
 */
export async function deployLivepeer(anvil: Anvil, options: DeployOptions = {}): Promise<Livepeer> {
  const artifacts = livepeerArtifacts();
  const deployer = new NonceManager(new Wallet(DEPLOYER_KEY, anvil.provider));
  const deploy = async (name: ArtifactName, ...args: unknown[]) => {
    const factory = new ContractFactory(artifacts[name].abi, artifacts[name].bytecode, deployer);
    const contract = await factory.deploy(...args);
    await contract.waitForDeployment();
    return contract as Contract;
  };
  const send = async (contract: Contract, method: string, ...args: unknown[]) => {
    const tx = (await contract.getFunction(method)(...args)) as { wait(): Promise<unknown> };
    await tx.wait();
  };
  const selector = (signature: string) => id(signature).slice(0, 10);

  const controller = await deploy('Controller');
  const controllerAddress = await controller.getAddress();
  const broker = await deploy('TicketBroker', controllerAddress);
  const minter = await deploy('Minter', controllerAddress, 0n, 0n, 0n);
  const rounds = await deploy('GenericMock');
  const bonding = await deploy('GenericMock');
  // Any 20 bytes: the Controller records the git commit each contract was deployed from.
  const gitHash = `0x${'00'.repeat(20)}`;
  for (const [name, contract] of [
    ['TicketBroker', broker],
    ['JobsManager', broker],
    ['Minter', minter],
    ['RoundsManager', rounds],
    ['BondingManager', bonding],
  ] as const) {
    await send(controller, 'setContractInfo', id(name), await contract.getAddress(), gitHash);
  }
  await send(controller, 'unpause');
  await send(broker, 'setUnlockPeriod', options.unlockPeriodRounds ?? 2n);
  await send(broker, 'setTicketValidityPeriod', options.ticketValidityRounds ?? 2n);
  await send(bonding, 'setMockBool', selector('isActiveTranscoder(address)'), true);
  await send(bonding, 'setMockUint256', selector('getTranscoderPoolSize()'), 1n);
  await send(rounds, 'setMockBool', selector('currentRoundInitialized()'), true);
  let round = FIRST_ROUND;
  const setRound = async () => {
    await send(rounds, 'setMockUint256', selector('currentRound()'), round);
    await send(rounds, 'setMockUint256', selector('lastInitializedRound()'), round);
    await send(
      rounds,
      'setMockBytes32',
      selector('blockHashForRound(uint256)'),
      roundBlockHash(round),
    );
  };
  await setRound();
  return {
    controller: controllerAddress,
    ticketBroker: broker,
    roundsManager: rounds,
    bondingManager: await bonding.getAddress(),
    minter: await minter.getAddress(),
    round: () => round,
    async advanceRound() {
      round += 1n;
      await setRound();
    },
  };
}

/**
 * A TCP relay in front of anvil that a test can cut (RPC outage) and restore, on a fixed port
 * so the service under test keeps its ETH_RPC_URL.
 */
export interface RpcRelay {
  url: string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startRelay(targetPort: number): Promise<RpcRelay> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const next = createServer((socket) => {
        sockets.add(socket);
        const upstream = createConnectionTo(targetPort);
        socket.pipe(upstream).pipe(socket);
        const drop = () => {
          sockets.delete(socket);
          socket.destroy();
          upstream.destroy();
        };
        socket.on('error', drop).on('close', drop);
        upstream.on('error', drop).on('close', drop);
      });
      next.once('error', reject);
      next.listen(port, '127.0.0.1', () => {
        server = next;
        resolve();
      });
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      if (server === null) return resolve();
      server.close(() => resolve());
      server = null;
    });
  await listen();
  return { url: `http://127.0.0.1:${port}`, cut: stop, restore: listen, close: stop };
}

function createConnectionTo(port: number): Socket {
  return connect(port, '127.0.0.1');
}
