// The signer as operators run it on a real chain (anvil) and the real database: `tollhouse
// serve` child processes, and `tollhouse signer …` in-process (the command line's own entry, as
// src/main.ts runs it) but for two child processes, for the process boundary.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Wallet, parseEther } from 'ethers';
import { describe, expect, it } from 'vitest';
import { createDatabase } from '../../src/database.ts';
import { createLogger } from '../../src/platform/log.ts';
import { migratedDataDir, onRealPostgres } from '../support/db.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { runCliInProcess } from '../support/cli.ts';
import { freePort, runCli, serve, waitReady } from '../support/process.ts';
import type { ServeProcess } from '../support/process.ts';
import { PASSWORD, depositEvents, fundedAccount, senderInfo, signerEnv } from './helpers.ts';
import { useLivepeerChain } from '../support/fixtures.ts';
import { CHAIN_POLL } from '../support/anvil.ts';
import { eventually } from '../support/eventually.ts';

const chain = useLivepeerChain();
const validate = createResponseValidator();

/** Where a child process keeps its data: this file's PostgreSQL chain.database, or a PGlite folder. */
// Every test here shares the file's database, so every process must share its secret too.
const SECRET = randomBytes(32).toString('hex');

async function storage(): Promise<{ env: Record<string, string>; dataDir: string }> {
  if (chain.database.url !== null) {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-signer-proc-'));
    return { env: { DATABASE_URL: chain.database.url, TOLLHOUSE_SECRET: SECRET }, dataDir };
  }
  // An embedded folder, migrated beforehand: these tests are about funding, not first starts.
  const dataDir = await migratedDataDir();
  return { env: { TOLLHOUSE_DATA_DIR: dataDir }, dataDir };
}

async function readJournal(dataDir: string, from: string) {
  const handle = await createDatabase({
    config: { url: chain.database.url, poolMax: 1, dataDir },
    log: createLogger({ level: 'silent' }),
  });
  try {
    return await handle.db
      .selectFrom('funding_transactions')
      .select(['kind', 'status', 'value_wei', 'tx_hash'])
      .where('from_address', '=', from)
      .execute();
  } finally {
    await handle.close();
  }
}

const fundingStates = (proc: ServeProcess): string[] =>
  proc
    .output()
    .split('\n')
    .filter((line) => line.includes('"msg":"signer: funding state"'))
    .map((line) => (JSON.parse(line) as { state: string }).state);

async function stop(proc: ServeProcess) {
  if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGTERM');
  return proc.exited;
}

describe('tollhouse serve with funding targets', () => {
  it('does not fund twice after being killed between sending and confirming', async () => {
    const account = await fundedAccount(chain.anvil);
    const { env: db, dataDir } = await storage();
    const env = {
      ...db,
      ...signerEnv(chain.anvil.url, chain.livepeer, account, {
        SIGNER_TARGET_DEPOSIT_WEI: parseEther('1').toString(),
        SIGNER_TARGET_RESERVE_WEI: parseEther('0.5').toString(),
        SIGNER_MAX_PER_TX_WEI: parseEther('5').toString(),
        SIGNER_MAX_PER_DAY_WEI: parseEther('5').toString(),
      }),
    };
    // Transactions now wait in the mempool until the test mines a block.
    await chain.anvil.setAutomine(false);
    try {
      const first = serve(await freePort(), env);
      // The journal marks a transaction `sent` before broadcasting it, so once the node holds
      // it the journal does too: kill the process before it can see it confirmed.
      await eventually(
        async () => {
          const pending = BigInt(
            await chain.anvil.rpc<string>('eth_getTransactionCount', [
              account.wallet.address,
              'pending',
            ]),
          );
          return pending > 0n;
        },
        { ...CHAIN_POLL, what: 'the funding transaction in the mempool' },
      );
      first.child.kill('SIGKILL');
      expect((await first.exited).signal).toBe('SIGKILL');

      const second = serve(await freePort(), env);
      try {
        await eventually(() => fundingStates(second).includes('waiting_for_pending'), {
          ...CHAIN_POLL,
          what: 'the restarted signer to find the pending transaction',
        });
        await chain.anvil.mine();
        await eventually(() => fundingStates(second).includes('idle'), {
          ...CHAIN_POLL,
          what: 'the restarted signer to settle',
        });
      } finally {
        await stop(second);
      }
      expect(second.output()).toContain('"msg":"signer: transaction settled"');
      // Neither the key nor the password ever reaches the logs.
      for (const output of [first.output(), second.output()]) {
        expect(output).toContain(account.wallet.address);
        expect(output.toLowerCase()).not.toContain(
          account.wallet.privateKey.slice(2).toLowerCase(),
        );
        expect(output).not.toContain(PASSWORD);
      }
    } finally {
      await chain.anvil.setAutomine(true);
    }
    expect(await depositEvents(chain.livepeer, account.wallet.address)).toHaveLength(1);
    expect(await senderInfo(chain.livepeer, account.wallet.address)).toMatchObject({
      deposit: parseEther('1'),
      reserve: parseEther('0.5'),
    });
    const journal = await readJournal(dataDir, account.wallet.address);
    expect(journal.map((r) => [r.kind, r.status, r.value_wei])).toEqual([
      ['fund', 'confirmed', parseEther('1.5').toString()],
    ]);
  });

  it.runIf(onRealPostgres())(
    'sends one funding transaction when two replicas share the database',
    async () => {
      const account = await fundedAccount(chain.anvil);
      const { env: db, dataDir } = await storage();
      const env = {
        ...db,
        ...signerEnv(chain.anvil.url, chain.livepeer, account, {
          SIGNER_TARGET_DEPOSIT_WEI: parseEther('1').toString(),
          SIGNER_TARGET_RESERVE_WEI: parseEther('1').toString(),
          SIGNER_MAX_PER_TX_WEI: parseEther('5').toString(),
          SIGNER_MAX_PER_DAY_WEI: parseEther('5').toString(),
        }),
      };
      const replicas = [serve(await freePort(), env), serve(await freePort(), env)];
      try {
        await eventually(() => replicas.every((r) => fundingStates(r).includes('idle')), {
          ...CHAIN_POLL,
          what: 'both replicas to see the account funded',
        });
      } finally {
        await Promise.all(replicas.map(stop));
      }
      expect(await depositEvents(chain.livepeer, account.wallet.address)).toHaveLength(1);
      const journal = await readJournal(dataDir, account.wallet.address);
      expect(journal.map((r) => [r.kind, r.status])).toEqual([['fund', 'confirmed']]);
      // Exactly one of them sent it.
      const senders = replicas.filter((r) => fundingStates(r).includes('sent'));
      expect(senders).toHaveLength(1);
    },
  );
});

describe('tollhouse signer commands', () => {
  it('show status, fund, unlock, and withdraw only after the unlock period', async () => {
    const account = await fundedAccount(chain.anvil);
    const { env: db } = await storage();
    const env = {
      ...db,
      ...signerEnv(chain.anvil.url, chain.livepeer, account),
      LOG_LEVEL: 'error',
    };
    const cli = (...args: string[]) => runCliInProcess(['signer', ...args], env);

    // A child process: the command line as an operator runs it.
    const status = await runCli(['signer', 'status'], env);
    expect(status.code).toBe(0);
    const document = JSON.parse(status.stdout) as {
      address: string;
      chain: { sender: { deposit_wei: string; unlock_in_progress: boolean }; eth_wei: string };
      contracts: { ticket_broker: string };
    };
    expect(validate('GET', '/v1/signer', 200, document)).toBeNull();
    expect(document.address).toBe(account.wallet.address);
    expect(document.contracts.ticket_broker).toBe(await chain.livepeer.ticketBroker.getAddress());
    expect(document.chain.eth_wei).toBe(parseEther('10').toString());
    expect(status.stdout).not.toContain(account.wallet.privateKey.slice(2));
    expect(status.stdout + status.stderr).not.toContain(PASSWORD);

    const fund = await cli('fund', '--deposit', '3000', '--reserve', '2000');
    expect(fund.code).toBe(0);
    expect(JSON.parse(fund.stdout)).toMatchObject({
      kind: 'fund',
      origin: 'manual',
      status: 'confirmed',
      deposit_wei: '3000',
      reserve_wei: '2000',
    });
    // fund-for credits another account (fundDepositAndReserveFor), journaled like fund.
    const gateway = Wallet.createRandom().address;
    const fundFor = await cli('fund-for', '--address', gateway.toLowerCase(), '--deposit', '700');
    expect(fundFor.code).toBe(0);
    expect(JSON.parse(fundFor.stdout)).toMatchObject({
      kind: 'fund',
      beneficiary: gateway,
      status: 'confirmed',
      deposit_wei: '700',
    });
    expect(await senderInfo(chain.livepeer, gateway)).toMatchObject({ deposit: 700n });
    expect((await cli('unlock')).code).toBe(0);
    const unlocking = JSON.parse((await cli('status')).stdout) as {
      chain: { sender: { unlock_in_progress: boolean; withdraw_round: string } };
      warnings: string[];
    };
    expect(unlocking.chain.sender.unlock_in_progress).toBe(true);
    expect(unlocking.warnings).toContainEqual(expect.stringContaining('unlock'));

    const early = await cli('withdraw');
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(
      /^tollhouse: The TicketBroker refused withdraw: .*account is locked/,
    );
    await chain.livepeer.advanceRound();
    await chain.livepeer.advanceRound();
    const withdraw = await cli('withdraw');
    expect(withdraw.code).toBe(0);
    expect(JSON.parse(withdraw.stdout)).toMatchObject({ kind: 'withdraw', status: 'confirmed' });
    expect(await senderInfo(chain.livepeer, account.wallet.address)).toMatchObject({
      deposit: 0n,
      reserve: 0n,
    });
  });

  it('refuse bad amounts, and report a disabled signer', async () => {
    const account = await fundedAccount(chain.anvil);
    const { env: db } = await storage();
    const env = {
      ...db,
      ...signerEnv(chain.anvil.url, chain.livepeer, account),
      LOG_LEVEL: 'error',
    };
    for (const args of [
      ['fund', '--deposit', '1.5'],
      ['fund', '--deposit', '-1'],
      ['fund'],
      ['fund', '--deposit', '0', '--reserve', '0'],
      ['fund', '--bogus', '1'],
      ['fund', '--address', '0x0000000000000000000000000000000000000001', '--deposit', '1'],
      ['fund-for', '--deposit', '1'],
      ['fund-for', '--address', '0x1234', '--deposit', '1'],
      ['unlock', '--address', '0x0000000000000000000000000000000000000001'],
      ['launch'],
    ]) {
      const result = await runCliInProcess(['signer', ...args], env);
      expect(result.code, args.join(' ')).toBe(2);
    }
    const disabled = await runCli(['signer', 'status'], { ...db, LOG_LEVEL: 'error' });
    expect(disabled.code).toBe(1);
    expect(JSON.parse(disabled.stdout)).toMatchObject({
      enabled: false,
      reason: expect.stringContaining('ETH_RPC_URL is not set'),
    });
    const cannot = await runCliInProcess(['signer', 'unlock'], { ...db, LOG_LEVEL: 'error' });
    expect(cannot.code).toBe(1);
    expect(cannot.stderr).toMatch(/^tollhouse: The payment signer is disabled/);
  });
});

describe('tollhouse serve with SIGNER_PORT', () => {
  it('serves the remote signer (and health) alone on the second port, and still on PORT', async () => {
    const account = await fundedAccount(chain.anvil);
    const { env: db } = await storage();
    const signerPort = await freePort();
    const proc = serve(await freePort(), {
      ...db,
      ...signerEnv(chain.anvil.url, chain.livepeer, account),
      SIGNER_PORT: String(signerPort),
      SIGNER_HOST: '127.0.0.1',
    });
    try {
      await waitReady(proc);
      const signerUrl = `http://127.0.0.1:${signerPort}`;
      expect((await fetch(`${signerUrl}/readyz`)).status).toBe(200);
      // Without a credential: go-livepeer's error shape, from both listeners.
      for (const base of [signerUrl, proc.url]) {
        const res = await fetch(`${base}/sign-orchestrator-info`, { method: 'POST' });
        expect(res.status).toBe(401);
        expect(await res.json()).toEqual({ error: { message: 'Invalid API key' } });
      }
      // The REST API is not on the signer port.
      const api = await fetch(`${signerUrl}/v1/signer`);
      expect(api.status).toBe(404);
      expect(await api.json()).toEqual({ error: { message: 'no route for GET /v1/signer' } });
      expect((await fetch(`${proc.url}/v1/signer`)).status).toBe(401);
      expect(proc.output()).toContain('"msg":"remote signer is listening"');
    } finally {
      proc.child.kill('SIGTERM');
      expect((await proc.exited).code).toBe(0);
    }
  });
});
