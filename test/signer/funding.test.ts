// The funding policy and journal on a real chain (anvil) and the real database, in process.
import { parseEther } from 'ethers';
import { describe, expect, it } from 'vitest';
import { migrateToLatest } from '../../src/platform/migrations.ts';
import { adminKey, bearer, issueKey } from '../support/credentials.ts';
import type { TestDatabase } from '../support/db.ts';
import { json } from '../support/http.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { depositEvents, fundedAccount, senderInfo, signerEnv, startSignerApp } from './helpers.ts';
import { newAccount, useLivepeerChain } from '../support/fixtures.ts';
import { CHAIN_POLL } from '../support/anvil.ts';
import { eventually } from '../support/eventually.ts';

const chain = useLivepeerChain();
const validate = createResponseValidator();

const journal = async (handle: Awaited<ReturnType<TestDatabase['open']>>, from: string) =>
  handle.db
    .selectFrom('funding_transactions')
    .selectAll()
    .where('from_address', '=', from)
    .orderBy('created_at')
    .execute();

describe('funding policy', () => {
  it('brings deposit and reserve to target in transactions no larger than the per-transaction cap', async () => {
    const handle = await chain.database.open();
    const account = await fundedAccount(chain.anvil);
    const running = await startSignerApp(
      handle,
      signerEnv(chain.anvil.url, chain.livepeer, account, {
        SIGNER_TARGET_DEPOSIT_WEI: parseEther('1').toString(),
        SIGNER_TARGET_RESERVE_WEI: parseEther('0.5').toString(),
        SIGNER_MAX_PER_TX_WEI: parseEther('0.4').toString(),
        SIGNER_MAX_PER_DAY_WEI: parseEther('5').toString(),
      }),
    );
    try {
      await eventually(
        async () => {
          const status = await running.app.signer.status();
          return status.funding?.lastRun.state === 'idle' && status;
        },
        { ...CHAIN_POLL, what: 'funding to settle at target' },
      );
      const info = await senderInfo(chain.livepeer, account.wallet.address);
      expect(info.deposit).toBe(parseEther('1'));
      expect(info.reserve).toBe(parseEther('0.5'));

      const rows = await journal(handle, account.wallet.address);
      // 1.5 ETH at most 0.4 per transaction: 0.4 + 0.4 + 0.4 + 0.3.
      expect(rows.map((r) => r.value_wei)).toEqual([
        parseEther('0.4').toString(),
        parseEther('0.4').toString(),
        parseEther('0.4').toString(),
        parseEther('0.3').toString(),
      ]);
      expect(rows.every((r) => r.status === 'confirmed' && r.origin === 'policy')).toBe(true);
      expect(await depositEvents(chain.livepeer, account.wallet.address)).toHaveLength(4);

      // The cached view caught up through the TicketBroker events, and so did the gauges.
      const status = await running.app.signer.status();
      expect(status.view?.sender.depositWei).toBe(parseEther('1'));
      expect(status.warnings).toEqual([]);
      const metrics = await running.app.metrics.registry.metrics();
      expect(metrics).toMatch(/^tollhouse_signer_deposit_wei 1000000000000000000$/m);
      expect(metrics).toMatch(/^tollhouse_signer_reserve_wei 500000000000000000$/m);
      expect(metrics).toMatch(/^tollhouse_signer_warnings 0$/m);

      const audit = await handle.db
        .selectFrom('audit_log')
        .selectAll()
        .where('action', '=', 'signer.fund')
        .execute();
      expect(audit).toHaveLength(4);
      expect(audit.every((a) => a.actor === 'system')).toBe(true);

      // The low deposit and reserve were announced to operators once per episode (from one
      // funding transaction to the next), not once per policy run.
      const alerts = await handle.db
        .selectFrom('outbound_events')
        .selectAll()
        .where('type', 'in', ['signer.deposit_low', 'signer.reserve_low'])
        .orderBy('seq')
        .execute();
      const episodes = ['initial', ...rows.map((r) => r.id)];
      expect(alerts.length).toBeGreaterThanOrEqual(2);
      expect(alerts.every((a) => a.account_id === null)).toBe(true);
      expect(alerts.map((a) => a.key.split(':').at(-1))).toEqual(
        expect.arrayContaining(['initial']),
      );
      for (const alert of alerts) expect(episodes).toContain(alert.key.split(':').at(-1));
      expect(alerts.filter((a) => a.type === 'signer.deposit_low').length).toBeLessThanOrEqual(
        rows.length,
      );
    } finally {
      await running.close();
    }
  });

  it('stops at the daily cap and still holds it after a restart', async () => {
    const handle = await chain.database.open();
    const account = await fundedAccount(chain.anvil);
    const env = signerEnv(chain.anvil.url, chain.livepeer, account, {
      SIGNER_TARGET_DEPOSIT_WEI: parseEther('1').toString(),
      SIGNER_TARGET_RESERVE_WEI: parseEther('1').toString(),
      SIGNER_MAX_PER_TX_WEI: parseEther('0.5').toString(),
      SIGNER_MAX_PER_DAY_WEI: parseEther('1.2').toString(),
    });
    const capped = async (running: Awaited<ReturnType<typeof startSignerApp>>) =>
      eventually(
        async () => {
          const status = await running.app.signer.status();
          return status.funding?.lastRun.state === 'capped' && status;
        },
        { ...CHAIN_POLL, what: 'the daily cap' },
      );

    const first = await startSignerApp(handle, env);
    let status;
    try {
      status = await capped(first);
    } finally {
      await first.close();
    }
    expect(status.funding?.spentLastDayWei).toBe(parseEther('1.2'));
    expect(status.warnings).toContainEqual(expect.stringContaining('daily cap'));
    const before = await journal(handle, account.wallet.address);
    expect(before.map((r) => r.value_wei)).toEqual([
      parseEther('0.5').toString(),
      parseEther('0.5').toString(),
      parseEther('0.2').toString(),
    ]);

    const second = await startSignerApp(handle, env);
    try {
      await capped(second);
    } finally {
      await second.close();
    }
    expect(await journal(handle, account.wallet.address)).toHaveLength(3);
    const info = await senderInfo(chain.livepeer, account.wallet.address);
    expect(info.deposit + info.reserve).toBe(parseEther('1.2'));
  });

  it('funds another address with fundDepositAndReserveFor', async () => {
    const handle = await chain.database.open();
    const account = await fundedAccount(chain.anvil);
    const gateway = (await fundedAccount(chain.anvil, '0')).wallet.address;
    const running = await startSignerApp(
      handle,
      signerEnv(chain.anvil.url, chain.livepeer, account, {
        SIGNER_TARGET_DEPOSIT_WEI: '3000',
        SIGNER_TARGET_RESERVE_WEI: '2000',
        SIGNER_MAX_PER_TX_WEI: '100000',
        SIGNER_MAX_PER_DAY_WEI: '100000',
        SIGNER_FUND_FOR: gateway,
      }),
    );
    try {
      await eventually(
        async () => {
          const status = await running.app.signer.status();
          return status.funding?.lastRun.state === 'idle' && status;
        },
        { ...CHAIN_POLL, what: 'funding of the gateway' },
      );
    } finally {
      await running.close();
    }
    expect(await senderInfo(chain.livepeer, gateway)).toEqual({
      deposit: 3000n,
      reserve: 2000n,
      withdrawRound: 0n,
    });
    expect(await senderInfo(chain.livepeer, account.wallet.address)).toMatchObject({ deposit: 0n });
  });

  it('rebroadcasts a journaled transaction the node never saw instead of funding again', async () => {
    const handle = await chain.database.open();
    await migrateToLatest(handle.db);
    const account = await fundedAccount(chain.anvil);
    // A crash after the journal recorded the signed transaction but before the broadcast:
    // the row is `sent`, the node has never heard of the hash.
    const wallet = account.wallet.connect(chain.anvil.provider);
    const data = chain.livepeer.ticketBroker.interface.encodeFunctionData('fundDepositAndReserve', [
      600n,
      400n,
    ]);
    const populated = await wallet.populateTransaction({
      to: await chain.livepeer.ticketBroker.getAddress(),
      data,
      value: 1000n,
    });
    const raw = await wallet.signTransaction(populated);
    const { Transaction } = await import('ethers');
    const tx = Transaction.from(raw);
    await handle.db
      .insertInto('funding_transactions')
      .values({
        id: 'ftx_0000000000000000000000',
        kind: 'fund',
        origin: 'policy',
        status: 'sent',
        chain_id: 31337n,
        from_address: account.wallet.address,
        beneficiary: account.wallet.address,
        deposit_wei: '600',
        reserve_wei: '400',
        value_wei: '1000',
        wanted_wei: '1000',
        nonce: BigInt(tx.nonce),
        tx_hash: tx.hash,
        raw_tx: raw,
        block_number: null,
        error: null,
        sent_at: new Date(),
        settled_at: null,
      })
      .execute();

    const running = await startSignerApp(
      handle,
      signerEnv(chain.anvil.url, chain.livepeer, account, {
        SIGNER_TARGET_DEPOSIT_WEI: '600',
        SIGNER_TARGET_RESERVE_WEI: '400',
        SIGNER_MAX_PER_TX_WEI: '100000',
        SIGNER_MAX_PER_DAY_WEI: '100000',
      }),
    );
    try {
      await eventually(
        async () => {
          const status = await running.app.signer.status();
          return status.funding?.lastRun.state === 'idle' && status;
        },
        { ...CHAIN_POLL, what: 'the policy to go idle' },
      );
    } finally {
      await running.close();
    }
    const rows = await journal(handle, account.wallet.address);
    expect(rows.map((r) => [r.status, r.tx_hash])).toEqual([['confirmed', tx.hash]]);
    expect(await depositEvents(chain.livepeer, account.wallet.address)).toHaveLength(1);
    expect(await senderInfo(chain.livepeer, account.wallet.address)).toMatchObject({
      deposit: 600n,
      reserve: 400n,
    });
  });

  it('settles a manual transaction a command stopped waiting for, also without funding targets', async () => {
    const handle = await chain.database.open();
    await migrateToLatest(handle.db);
    const account = await fundedAccount(chain.anvil);
    // `signer unlock` gave up waiting (or was killed) after the broadcast; the chain mined it.
    const wallet = account.wallet.connect(chain.anvil.provider);
    const broker = chain.livepeer.ticketBroker.connect(
      wallet,
    ) as typeof chain.livepeer.ticketBroker;
    await (
      (await broker.getFunction('fundDeposit')({ value: 10n })) as { wait(): Promise<unknown> }
    ).wait();
    const sent = (await broker.getFunction('unlock')()) as {
      hash: string;
      nonce: number;
      wait(): Promise<unknown>;
    };
    await sent.wait();
    await handle.db
      .insertInto('funding_transactions')
      .values({
        id: 'ftx_0000000000000000000001',
        kind: 'unlock',
        origin: 'manual',
        status: 'sent',
        chain_id: 31337n,
        from_address: account.wallet.address,
        beneficiary: account.wallet.address,
        nonce: BigInt(sent.nonce),
        tx_hash: sent.hash,
        raw_tx: '0x00',
        block_number: null,
        error: null,
        sent_at: new Date(),
        settled_at: null,
      })
      .execute();
    const running = await startSignerApp(
      handle,
      signerEnv(chain.anvil.url, chain.livepeer, account),
    );
    try {
      const status = await eventually(
        async () => {
          const s = await running.app.signer.status();
          return s.funding?.lastTransaction?.status === 'confirmed' && s;
        },
        { ...CHAIN_POLL, what: 'the pending row to settle' },
      );
      expect(status.funding?.lastTransaction).toMatchObject({ kind: 'unlock', txHash: sent.hash });
      expect(status.funding?.lastRun.state).toBe('disabled');
    } finally {
      await running.close();
    }
  });
});

describe('GET /v1/signer/funding', () => {
  it('pages the whole journal newest first, wei as decimal strings, to admins only', async () => {
    const handle = await chain.database.open();
    const account = await fundedAccount(chain.anvil);
    const running = await startSignerApp(
      handle,
      signerEnv(chain.anvil.url, chain.livepeer, account, {
        SIGNER_TARGET_DEPOSIT_WEI: parseEther('1').toString(),
        SIGNER_TARGET_RESERVE_WEI: parseEther('0.5').toString(),
        SIGNER_MAX_PER_TX_WEI: parseEther('0.4').toString(),
        SIGNER_MAX_PER_DAY_WEI: parseEther('5').toString(),
      }),
    );
    try {
      await eventually(
        async () => {
          const status = await running.app.signer.status();
          return status.funding?.lastRun.state === 'idle' && status;
        },
        { ...CHAIN_POLL, what: 'funding to settle at target' },
      );
      const t = { app: running.app };
      const admin = bearer((await adminKey(t)).secret);
      const get = async (query: string, headers: Record<string, string> = admin) => {
        const response = await fetch(`${running.url}/v1/signer/funding${query}`, { headers });
        const body = await json(response);
        expect(validate('GET', '/v1/signer/funding', response.status, body)).toBeNull();
        return { status: response.status, body };
      };

      // Walk every page, 3 rows at a time (earlier tests in this file left rows too).
      const seen: Array<Record<string, unknown>> = [];
      let cursor: string | null = null;
      do {
        const page = await get(`?limit=3${cursor === null ? '' : `&cursor=${cursor}`}`);
        expect(page.status).toBe(200);
        expect(page.body.transactions.length).toBeLessThanOrEqual(3);
        seen.push(...page.body.transactions);
        cursor = page.body.next_cursor;
      } while (cursor !== null);
      const all = await handle.db
        .selectFrom('funding_transactions')
        .select(['id'])
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .execute();
      expect(seen.map((r) => r.id)).toEqual(all.map((r) => r.id));

      // This signer's four transactions, newest first: 0.3 then 0.4 × 3, exact to the wei.
      const mine = seen.filter((r) => r.beneficiary === account.wallet.address);
      expect(mine.map((r) => r.value_wei)).toEqual([
        parseEther('0.3').toString(),
        parseEther('0.4').toString(),
        parseEther('0.4').toString(),
        parseEther('0.4').toString(),
      ]);
      expect(mine.every((r) => r.status === 'confirmed' && r.kind === 'fund')).toBe(true);
      expect(
        mine.every((r) => typeof r.tx_hash === 'string' && typeof r.block_number === 'string'),
      ).toBe(true);

      // Hostile input: each refused with 400 InvalidRequest, nothing else.
      for (const query of [
        '?limit=0',
        '?limit=501',
        '?limit=ten',
        '?limit=1.5',
        '?cursor=nope',
        "?cursor=ftx_'%20or%201=1--",
        // Well-formed, but no such transaction.
        '?cursor=ftx_UnknownUnknownUnknown0',
        '?order=asc',
      ]) {
        const refused = await get(query);
        expect(refused.status, query).toBe(400);
        expect(refused.body.error, query).toBe('InvalidRequest');
      }
      const customer = await issueKey(t, await newAccount(t), { scopes: ['usage:read'] });
      expect((await get('', bearer(customer.secret))).status).toBe(403);
      expect((await get('', {})).status).toBe(401);
    } finally {
      await running.close();
    }
  });
});
