// Shared set-up of the signer tests: a funded fresh account in a keystore, the settings that
// point tollhouse at the test chain, and an app on an existing database handle (so a "restart"
// keeps the journal, also on in-memory PGlite).
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wallet, parseEther } from 'ethers';
import { createApp } from '../../src/app.ts';
import type { App } from '../../src/app.ts';
import type { DatabaseHandle } from '../../src/database.ts';
import { createLogger } from '../../src/platform/log.ts';
import type { Logger } from '../../src/platform/log.ts';
import type { Clock } from '../../src/platform/clock.ts';
import { startServer } from '../../src/platform/server.ts';
import type { RunningServer } from '../../src/platform/server.ts';
import { writeKeystore } from '../../src/signer/index.ts';
import { testConfig } from '../support/app.ts';
import type { Anvil, Livepeer } from '../support/anvil.ts';

export const PASSWORD = 'correct horse battery staple';
// Tests only: a cheap scrypt so each start decrypts in milliseconds.
const TEST_SCRYPT_N = 1024;

export interface SignerAccount {
  wallet: Wallet;
  keystoreFile: string;
  dir: string;
}

export async function fundedAccount(anvil: Anvil, eth = '10'): Promise<SignerAccount> {
  const wallet = new Wallet(Wallet.createRandom().privateKey);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-signer-'));
  const keystoreFile = path.join(dir, 'keystore.json');
  await writeKeystore(keystoreFile, wallet.privateKey, PASSWORD, { scryptN: TEST_SCRYPT_N });
  await anvil.setBalance(wallet.address, parseEther(eth));
  return { wallet, keystoreFile, dir };
}

export function signerEnv(
  rpcUrl: string,
  livepeer: Livepeer,
  account: SignerAccount,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    ETH_RPC_URL: rpcUrl,
    LIVEPEER_CONTROLLER: livepeer.controller,
    SIGNER_KEYSTORE_FILE: account.keystoreFile,
    SIGNER_PASSWORD: PASSWORD,
    SIGNER_POLL_INTERVAL_MS: '100',
    SIGNER_REFRESH_INTERVAL_MS: '1000',
    ...extra,
  };
}

export interface RunningApp {
  app: App;
  server: RunningServer;
  url: string;
  close(): Promise<void>;
}

export async function startSignerApp(
  database: DatabaseHandle,
  env: Record<string, string>,
  log: Logger = createLogger({ level: 'silent' }),
  clock?: Clock,
): Promise<RunningApp> {
  const config = testConfig({ PORT: '1', ...env });
  const app = await createApp({ config, log, database, ...(clock === undefined ? {} : { clock }) });
  const server = await startServer(app.handler, {
    host: '127.0.0.1',
    port: 0,
    shutdownTimeoutMs: config.http.shutdownTimeoutMs,
    log,
  });
  return {
    app,
    server,
    url: `http://127.0.0.1:${server.port}`,
    async close() {
      await server.close();
      await app.close();
    },
  };
}

export async function senderInfo(livepeer: Livepeer, address: string) {
  const [sender, reserve] = (await livepeer.ticketBroker.getFunction('getSenderInfo')(address)) as [
    [bigint, bigint],
    [bigint, bigint],
  ];
  return { deposit: sender[0], withdrawRound: sender[1], reserve: reserve[0] };
}

/** DepositFunded events for `address` on the TicketBroker. */
export async function depositEvents(livepeer: Livepeer, address: string) {
  const broker = livepeer.ticketBroker;
  return broker.queryFilter(broker.filters.DepositFunded!(address), 0, 'latest');
}
