// Operator operations, status, outage handling and ticket signing, on anvil, in process.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import {
  AbiCoder,
  Wallet,
  getBytes,
  hexlify,
  keccak256,
  parseEther,
  solidityPacked,
  toBeHex,
  ZeroAddress,
  ZeroHash,
} from 'ethers';
import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/platform/log.ts';
import { signerStatusJson as signerStatusJsonForTests } from '../../src/signer/index.ts';
import { DEPLOYER_KEY, startRelay } from '../support/anvil.ts';
import { startTestApp } from '../support/app.ts';
import { adminKey, bearer, issueKey } from '../support/credentials.ts';
import { json } from '../support/http.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { ROOT } from '../support/process.ts';
import { fundedAccount, senderInfo, signerEnv, startSignerApp } from './helpers.ts';
import { newAccount, useLivepeerChain } from '../support/fixtures.ts';
import { CHAIN_POLL } from '../support/anvil.ts';
import { eventually } from '../support/eventually.ts';

const chain = useLivepeerChain();
const validate = createResponseValidator();

vi.setConfig({ testTimeout: 120_000 });

describe('GET /v1/signer', () => {
  it('answers 401 in the documented shape without a credential or with an unknown one', async () => {
    const t = await startTestApp();
    try {
      for (const headers of [
        {},
        { authorization: 'Bearer th_sk_not_a_real_key' },
        { authorization: 'Basic YWRtaW46YWRtaW4=' },
        { authorization: 'Bearer' },
      ]) {
        const response = await fetch(`${t.url}/v1/signer`, { headers });
        expect(response.status).toBe(401);
        const body = await json(response);
        expect(body).toEqual({ error: 'Unauthorized', message: 'Invalid API key' });
        expect(validate('GET', '/v1/signer', 401, body)).toBeNull();
      }
      const post = await fetch(`${t.url}/v1/signer`, { method: 'POST', body: '{' });
      expect(post.status).toBe(405);
    } finally {
      await t.close();
    }
  });

  it('serves the status to an admin key and refuses a key without the admin scope', async () => {
    const handle = await chain.database.open();
    const account = await fundedAccount(chain.anvil);
    const running = await startSignerApp(
      handle,
      signerEnv(chain.anvil.url, chain.livepeer, account),
    );
    try {
      const t = { app: running.app };
      const admin = await adminKey(t);
      const response = await fetch(`${running.url}/v1/signer`, { headers: bearer(admin.secret) });
      expect(response.status).toBe(200);
      const body = await json(response);
      expect(validate('GET', '/v1/signer', 200, body)).toBeNull();
      expect(body).toMatchObject({ enabled: true, address: account.wallet.address });
      expect(JSON.stringify(body)).not.toContain(account.wallet.privateKey.slice(2));

      const customer = await issueKey(t, await newAccount(t), {
        scopes: ['gateway', 'usage:read'],
      });
      const refused = await fetch(`${running.url}/v1/signer`, { headers: bearer(customer.secret) });
      expect(refused.status).toBe(403);
      expect(validate('GET', '/v1/signer', 403, await json(refused))).toBeNull();
    } finally {
      await running.close();
    }
  });

  it('reports the signer disabled, and why, without a chain or keystore', async () => {
    const t = await startTestApp();
    try {
      const status = signerStatusJsonForTests(await t.app.signer.status());
      expect(validate('GET', '/v1/signer', 200, status)).toBeNull();
      expect(status).toMatchObject({
        enabled: false,
        reason: 'ETH_RPC_URL is not set; SIGNER_KEYSTORE_FILE is not set',
        address: null,
        chain: null,
        warnings: ['signer disabled: ETH_RPC_URL is not set; SIGNER_KEYSTORE_FILE is not set'],
      });
      expect(t.app.signer.paymentSigner()).toBeNull();
      // The service is otherwise fine: readiness does not depend on the signer.
      expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});

describe('operator transactions', () => {
  it('funds, unlocks, refuses an early withdraw, and withdraws after the unlock period', async () => {
    const handle = await chain.database.open();
    const account = await fundedAccount(chain.anvil);
    const running = await startSignerApp(
      handle,
      signerEnv(chain.anvil.url, chain.livepeer, account),
    );
    const { signer } = running.app;
    try {
      const funded = await signer.operate({
        kind: 'fund',
        depositWei: parseEther('1'),
        reserveWei: parseEther('0.5'),
        actor: 'cli',
      });
      expect(funded).toMatchObject({
        status: 'confirmed',
        origin: 'manual',
        valueWei: parseEther('1.5'),
      });

      const unlock = await signer.operate({ kind: 'unlock', actor: 'cli' });
      expect(unlock.status).toBe('confirmed');
      let status = signerStatusJsonForTests(await signer.status());
      expect(validate('GET', '/v1/signer', 200, status)).toBeNull();
      expect(status.chain?.sender).toMatchObject({
        deposit_wei: parseEther('1').toString(),
        reserve_wei: parseEther('0.5').toString(),
        unlock_in_progress: true,
        withdraw_round: '102', // current round 100 + unlock period 2
      });
      expect(status.warnings).toContainEqual(expect.stringMatching(/unlock .* is in progress/));
      expect(status.funding?.last_transaction).toMatchObject({
        kind: 'unlock',
        status: 'confirmed',
      });
      expect(await running.app.metrics.registry.metrics()).toMatch(
        /^tollhouse_signer_warnings 1$/m,
      );

      await expect(signer.operate({ kind: 'withdraw', actor: 'cli' })).rejects.toMatchObject({
        status: 502,
        message: expect.stringContaining('account is locked'),
      });
      await chain.livepeer.advanceRound();
      await chain.livepeer.advanceRound();
      const before = await chain.anvil.provider.getBalance(account.wallet.address);
      const withdrawn = await signer.operate({ kind: 'withdraw', actor: 'cli' });
      expect(withdrawn.status).toBe('confirmed');
      const after = await chain.anvil.provider.getBalance(account.wallet.address);
      // 1.5 ETH back, less gas.
      expect(after - before).toBeGreaterThan(parseEther('1.49'));
      // The real TicketBroker leaves withdrawRound set after a withdrawal (protocol
      // MixinTicketBrokerCore.withdraw); tollhouse does not call an empty account unlocking.
      expect(await senderInfo(chain.livepeer, account.wallet.address)).toEqual({
        deposit: 0n,
        reserve: 0n,
        withdrawRound: 102n,
      });
      status = signerStatusJsonForTests(await signer.status());
      expect(status.chain?.sender.unlock_in_progress).toBe(false);

      const journal = await handle.db
        .selectFrom('funding_transactions')
        .select(['kind', 'status'])
        .where('from_address', '=', account.wallet.address)
        .orderBy('created_at')
        .execute();
      expect(journal).toEqual([
        { kind: 'fund', status: 'confirmed' },
        { kind: 'unlock', status: 'confirmed' },
        { kind: 'withdraw', status: 'failed' },
        { kind: 'withdraw', status: 'confirmed' },
      ]);
      const audit = await handle.db
        .selectFrom('audit_log')
        .select(['actor', 'action'])
        .where('action', 'like', 'signer.%')
        .orderBy('id')
        .execute();
      expect(audit).toEqual([
        { actor: 'cli', action: 'signer.fund' },
        { actor: 'cli', action: 'signer.unlock' },
        { actor: 'cli', action: 'signer.withdraw' },
      ]);
    } finally {
      await running.close();
    }
  });

  it('cancels an unlock, and refuses to cancel when none is in progress', async () => {
    const handle = await chain.database.open();
    const account = await fundedAccount(chain.anvil);
    const running = await startSignerApp(
      handle,
      signerEnv(chain.anvil.url, chain.livepeer, account),
    );
    const { signer } = running.app;
    try {
      await expect(signer.operate({ kind: 'unlock', actor: 'cli' })).rejects.toMatchObject({
        message: expect.stringContaining('sender deposit and reserve are zero'),
      });
      await signer.operate({ kind: 'fund', depositWei: 10n, reserveWei: 10n, actor: 'cli' });
      await signer.operate({ kind: 'unlock', actor: 'cli' });
      expect(
        (await senderInfo(chain.livepeer, account.wallet.address)).withdrawRound,
      ).toBeGreaterThan(0n);
      expect((await signer.operate({ kind: 'cancel_unlock', actor: 'cli' })).status).toBe(
        'confirmed',
      );
      expect((await senderInfo(chain.livepeer, account.wallet.address)).withdrawRound).toBe(0n);
      await expect(signer.operate({ kind: 'cancel_unlock', actor: 'cli' })).rejects.toMatchObject({
        message: expect.stringContaining('no unlock request in progress'),
      });
    } finally {
      await running.close();
    }
  });
});

describe('chain view', () => {
  it('backs off while the RPC endpoint is down, says so, keeps serving, and recovers', async () => {
    const handle = await chain.database.open();
    const account = await fundedAccount(chain.anvil);
    const relay = await startRelay(chain.anvil.port);
    const lines: Array<{ msg: string; retryInMs?: number; failures?: number }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean))
          lines.push(JSON.parse(line));
        done();
      },
    });
    const log = createLogger({ level: 'info', destination: sink });
    const running = await startSignerApp(
      handle,
      signerEnv(relay.url, chain.livepeer, account),
      log,
    );
    try {
      await eventually(() => running.app.signer.snapshot() ?? undefined, {
        ...CHAIN_POLL,
        what: 'a first chain view',
      });
      await relay.cut();
      const down = await eventually(
        async () => {
          const status = await running.app.signer.status();
          return (status.rpc?.consecutiveFailures ?? 0) >= 3 && status;
        },
        { ...CHAIN_POLL, what: 'the outage to show' },
      );
      expect(down.rpc).toMatchObject({ state: 'unreachable', nextRetryAt: expect.any(Date) });
      expect(down.rpc?.lastError).toMatch(/ECONNREFUSED|ECONNRESET|socket|connect/i);
      expect(down.rpc?.lastError).not.toContain(relay.url);
      expect(down.warnings[0]).toMatch(
        /^the Ethereum RPC endpoint is unreachable \(\d+ failures\)/,
      );
      // The last good view stays available to the signer meanwhile.
      expect(down.view).not.toBeNull();
      // Exponential backoff: each retry waits twice as long as the one before.
      const delays = lines.filter((l) => l.msg === 'signer: chain read failed; retrying');
      expect(delays.slice(0, 3).map((l) => l.retryInMs)).toEqual([200, 400, 800]);
      expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${running.url}/readyz`)).status).toBe(200);

      await relay.restore();
      const up = await eventually(
        async () => {
          const status = await running.app.signer.status();
          return status.rpc?.state === 'ok' && status;
        },
        { ...CHAIN_POLL, what: 'recovery', timeoutMs: 90_000 },
      );
      expect(up.rpc).toMatchObject({ consecutiveFailures: 0, lastError: null });
      expect(up.warnings.filter((w) => w.includes('unreachable'))).toEqual([]);
    } finally {
      await running.close();
      await relay.close();
    }
  });
});

describe('chain view events', () => {
  it('re-reads at once on a TicketBroker event for the account, and not for others', async () => {
    const handle = await chain.database.open();
    const account = await fundedAccount(chain.anvil);
    const other = await fundedAccount(chain.anvil);
    // A full re-read on the timer only every ten minutes: any change seen sooner came from events.
    const running = await startSignerApp(
      handle,
      signerEnv(chain.anvil.url, chain.livepeer, account, { SIGNER_REFRESH_INTERVAL_MS: '600000' }),
    );
    const fund = async (who: typeof account, wei: bigint) => {
      const broker = chain.livepeer.ticketBroker.connect(
        who.wallet.connect(chain.anvil.provider),
      ) as typeof chain.livepeer.ticketBroker;
      const tx = (await broker.getFunction('fundDeposit')({ value: wei })) as {
        wait(): Promise<{ blockNumber: number }>;
      };
      return BigInt((await tx.wait()).blockNumber);
    };
    try {
      const first = await eventually(() => running.app.signer.snapshot() ?? undefined, {
        ...CHAIN_POLL,
        what: 'a first view',
      });
      expect(first.sender.depositWei).toBe(0n);

      const unrelated = await fund(other, 5n);
      const later = await eventually(
        () => {
          const s = running.app.signer.snapshot();
          return s !== null && s.blockNumber >= unrelated && s;
        },
        { ...CHAIN_POLL, what: 'the view to pass the unrelated block' },
      );
      expect(later.refreshedAt).toEqual(first.refreshedAt);

      await fund(account, 7n);
      const refreshed = await eventually(
        () => {
          const s = running.app.signer.snapshot();
          return s !== null && s.sender.depositWei === 7n && s;
        },
        { ...CHAIN_POLL, what: 'the event-driven refresh' },
      );
      expect(refreshed.refreshedAt.getTime()).toBeGreaterThan(first.refreshedAt.getTime());
    } finally {
      await running.close();
    }
  });
});

describe('chain view at start-up', () => {
  it('starts without a reachable RPC endpoint, reports it, and connects once it answers', async () => {
    const handle = await chain.database.open();
    const account = await fundedAccount(chain.anvil);
    const relay = await startRelay(chain.anvil.port);
    await relay.cut();
    const running = await startSignerApp(handle, signerEnv(relay.url, chain.livepeer, account));
    try {
      const down = await eventually(
        async () => {
          const status = await running.app.signer.status();
          return (status.rpc?.consecutiveFailures ?? 0) >= 2 && status;
        },
        { ...CHAIN_POLL, what: 'the outage to show' },
      );
      expect(down).toMatchObject({ enabled: true, view: null, contracts: null });
      expect(down.warnings).toEqual([
        expect.stringMatching(/^the Ethereum RPC endpoint is unreachable/),
        'no chain view yet',
      ]);
      await relay.restore();
      const up = await eventually(
        async () => {
          const status = await running.app.signer.status();
          return status.view !== null && status;
        },
        { ...CHAIN_POLL, what: 'the first chain view', timeoutMs: 90_000 },
      );
      expect(up.contracts?.ticketBroker).toBe(await chain.livepeer.ticketBroker.getAddress());
      expect(up.view?.ethWei).toBe(parseEther('10'));
    } finally {
      await running.close();
      await relay.close();
    }
  });
});

describe('TicketBroker (the real bytecode)', () => {
  it('hashes tickets exactly as go-livepeer does (the shared vectors)', async () => {
    const vectors = JSON.parse(
      readFileSync(path.join(ROOT, 'test/signer/fixtures/ticket-hash.json'), 'utf8'),
    ) as {
      ticketHash: Array<{ faceValue: string; winProb: string; senderNonce: number; hash: string }>;
    };
    expect(vectors.ticketHash.length).toBeGreaterThan(0);
    for (const vector of vectors.ticketHash) {
      const ticket = {
        recipient: ZeroAddress,
        sender: ZeroAddress,
        faceValue: BigInt(vector.faceValue),
        winProb: BigInt(vector.winProb),
        senderNonce: BigInt(vector.senderNonce),
        recipientRandHash: ZeroHash,
        auxData: '0x',
      };
      expect(await chain.livepeer.ticketBroker.getFunction('getTicketHash')(ticket)).toBe(
        vector.hash,
      );
    }
  });
});

describe('payment signer interface', () => {
  it('signs a ticket that the TicketBroker redeems (hash, EIP-191 signature, winning check)', async () => {
    const handle = await chain.database.open();
    const account = await fundedAccount(chain.anvil);
    const running = await startSignerApp(
      handle,
      signerEnv(chain.anvil.url, chain.livepeer, account),
    );
    try {
      const { signer } = running.app;
      await signer.operate({ kind: 'fund', depositWei: 1000n, reserveWei: 1000n, actor: 'cli' });
      const view = await signer.refresh();
      const payment = signer.paymentSigner()!;
      expect(payment.address).toBe(account.wallet.address);
      expect(Object.keys(payment)).not.toContain('privateKey');

      const recipient = new Wallet(DEPLOYER_KEY, chain.anvil.provider);
      const recipientRand = 123456789n;
      const ticket = {
        recipient: recipient.address,
        sender: payment.address,
        faceValue: 1500n,
        winProb: 2n ** 256n - 1n, // always wins
        senderNonce: 1n,
        recipientRandHash: keccak256(toBeHex(recipientRand, 32)),
        auxData: AbiCoder.defaultAbiCoder().encode(
          ['uint256', 'bytes32'],
          [view.lastInitializedRound, view.lastInitializedRoundBlockHash],
        ),
      };
      const hash = keccak256(
        solidityPacked(
          ['address', 'address', 'uint256', 'uint256', 'uint256', 'bytes32', 'bytes'],
          [
            ticket.recipient,
            ticket.sender,
            ticket.faceValue,
            ticket.winProb,
            ticket.senderNonce,
            ticket.recipientRandHash,
            ticket.auxData,
          ],
        ),
      );
      const sig = hexlify(payment.signMessage(getBytes(hash)));
      expect(getBytes(sig)).toHaveLength(65);
      const broker = chain.livepeer.ticketBroker.connect(
        recipient,
      ) as typeof chain.livepeer.ticketBroker;
      expect(await broker.getFunction('getTicketHash')(ticket)).toBe(hash);

      // A signature by anyone else is refused.
      const forged = await Wallet.createRandom().signMessage(getBytes(hash));
      await expect(
        broker.getFunction('redeemWinningTicket').staticCall(ticket, forged, recipientRand),
      ).rejects.toThrow(/invalid signature over ticket hash/);

      const tx = (await broker.getFunction('redeemWinningTicket')(ticket, sig, recipientRand)) as {
        wait(): Promise<unknown>;
      };
      await tx.wait();
      // 1000 from the deposit, 500 from the reserve.
      expect(await senderInfo(chain.livepeer, payment.address)).toMatchObject({
        deposit: 0n,
        reserve: 500n,
      });
      await expect(
        broker.getFunction('redeemWinningTicket').staticCall(ticket, sig, recipientRand),
      ).rejects.toThrow(/ticket is used/);
    } finally {
      await running.close();
    }
  });
});
