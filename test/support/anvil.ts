// A real Ethereum chain for tests: `anvil` from the npm package @foundry-rs/anvil-linux-amd64
// (a prebuilt binary in bin/anvil, no install script), started on a free port and killed after;
// plus the Livepeer test contracts in ./contracts, compiled with the pure-JS `solc` package and
// deployed behind a test Controller.
//
// Compiling with solc-js takes seconds, so the output is cached in
// node_modules/.cache/tollhouse-contracts/<sha256 of source + compiler version>.json: already
// ignored by git, dropped by `npm ci`, and a changed source or compiler never reuses stale
// bytecode.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ContractFactory, JsonRpcProvider, Network, NonceManager, Wallet, id } from 'ethers';
import type { Contract, InterfaceAbi } from 'ethers';
import { ROOT, freePort } from './process.ts';

const require = createRequire(import.meta.url);
const ANVIL = path.join(
  path.dirname(require.resolve('@foundry-rs/anvil-linux-amd64/package.json')),
  'bin',
  'anvil',
);
const SOURCE = fileURLToPath(new URL('./contracts/Livepeer.sol', import.meta.url));
const CACHE_DIR = path.join(ROOT, 'node_modules', '.cache', 'tollhouse-contracts');

/** anvil's first default account (mnemonic "test test … junk"): deploys the contracts. */
export const DEPLOYER_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
export const CHAIN_ID = 31337;

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

async function waitFor(probe: () => Promise<unknown>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await probe();
      return;
    } catch (error) {
      if (Date.now() > deadline || String(error).includes('anvil exited')) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

interface Artifact {
  abi: InterfaceAbi;
  bytecode: string;
}

type Artifacts = Record<
  'TestController' | 'TestRoundsManager' | 'TestTicketBroker' | 'TestBondingManager',
  Artifact
>;

/** Compiles contracts/Livepeer.sol once per source/compiler version (see the file comment). */
export function compileContracts(): Artifacts {
  const source = readFileSync(SOURCE, 'utf8');
  const solc = require('solc') as { version(): string; compile(input: string): string };
  const key = createHash('sha256').update(source).update(solc.version()).digest('hex');
  const cached = path.join(CACHE_DIR, `${key}.json`);
  try {
    return JSON.parse(readFileSync(cached, 'utf8')) as Artifacts;
  } catch {
    // not compiled yet
  }
  const input = {
    language: 'Solidity',
    sources: { 'Livepeer.sol': { content: source } },
    settings: {
      optimizer: { enabled: true, runs: 200 },
      // redeemWinningTicket has more locals than the legacy code generator's stack allows.
      viaIR: true,
      evmVersion: 'cancun',
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as {
    errors?: Array<{ severity: string; formattedMessage: string }>;
    contracts: Record<
      string,
      Record<string, { abi: InterfaceAbi; evm: { bytecode: { object: string } } }>
    >;
  };
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) throw new Error(errors.map((e) => e.formattedMessage).join('\n'));
  const compiled = output.contracts['Livepeer.sol'] ?? {};
  const artifacts = Object.fromEntries(
    Object.entries(compiled).map(([name, c]) => [
      name,
      { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` },
    ]),
  ) as Artifacts;
  mkdirSync(CACHE_DIR, { recursive: true });
  // Written to a temporary name first: parallel test files may compile at the same time.
  const temporary = `${cached}.${process.pid}`;
  writeFileSync(temporary, JSON.stringify(artifacts));
  writeFileSync(cached, readFileSync(temporary));
  return artifacts;
}

export interface Livepeer {
  controller: string;
  ticketBroker: Contract;
  roundsManager: Contract;
  bondingManager: string;
  /** RoundsManager.advanceRound, mined. */
  advanceRound(): Promise<void>;
}

export interface DeployOptions {
  unlockPeriodRounds?: bigint;
  ticketValidityRounds?: bigint;
}

/** Deploys RoundsManager, BondingManager and TicketBroker and registers them in a Controller. */
export async function deployLivepeer(anvil: Anvil, options: DeployOptions = {}): Promise<Livepeer> {
  const artifacts = compileContracts();
  const deployer = new NonceManager(new Wallet(DEPLOYER_KEY, anvil.provider));
  const deploy = async (name: keyof Artifacts, ...args: unknown[]) => {
    const factory = new ContractFactory(artifacts[name].abi, artifacts[name].bytecode, deployer);
    const contract = await factory.deploy(...args);
    await contract.waitForDeployment();
    return contract as Contract;
  };
  const controller = await deploy('TestController');
  const rounds = await deploy('TestRoundsManager', 100n);
  const bonding = await deploy('TestBondingManager');
  const broker = await deploy(
    'TestTicketBroker',
    await rounds.getAddress(),
    options.unlockPeriodRounds ?? 2n,
    options.ticketValidityRounds ?? 2n,
  );
  for (const [name, contract] of [
    ['TicketBroker', broker],
    ['RoundsManager', rounds],
    ['BondingManager', bonding],
  ] as const) {
    const tx = (await controller.getFunction('setContractInfo')(
      id(name),
      await contract.getAddress(),
    )) as { wait(): Promise<unknown> };
    await tx.wait();
  }
  return {
    controller: await controller.getAddress(),
    ticketBroker: broker,
    roundsManager: rounds,
    bondingManager: await bonding.getAddress(),
    async advanceRound() {
      const tx = (await rounds.getFunction('advanceRound')()) as { wait(): Promise<unknown> };
      await tx.wait();
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
