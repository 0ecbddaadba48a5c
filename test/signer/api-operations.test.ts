// Operator transactions over the API (POST /v1/signer/…), on anvil with the real TicketBroker:
// preview → confirm, the same journal and audit log as the CLI, idempotent confirmation,
// the refusals with their documented statuses, and hostile bodies.
import { Wallet, parseEther } from 'ethers';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/platform/log.ts';
import { CONFIRMATION_TTL_MS } from '../../src/signer/index.ts';
import { adminKey, bearer, call } from '../support/credentials.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { useLivepeerChain } from '../support/fixtures.ts';
import { depositEvents, fundedAccount, senderInfo, signerEnv, startSignerApp } from './helpers.ts';

const chain = useLivepeerChain();
const validate = createResponseValidator();

async function start(env: Record<string, string> = {}, eth = '10') {
  const handle = await chain.database.open();
  const account = await fundedAccount(chain.anvil, eth);
  let now = new Date();
  const running = await startSignerApp(
    handle,
    signerEnv(chain.anvil.url, chain.livepeer, account, env),
    createLogger({ level: 'silent' }),
    () => now,
  );
  const t = { app: running.app, url: running.url };
  const admin = await adminKey(t);
  const op = async (path: string, body: unknown, secret = admin.secret) => {
    const response = await call(t as never, 'POST', `/v1/signer/${path}`, {
      headers: bearer(secret),
      body,
    });
    expect(validate('POST', `/v1/signer/${path}`, response.status, response.body)).toBeNull();
    return response;
  };
  return {
    handle,
    account,
    running,
    t,
    admin,
    op,
    advance: (ms: number) => {
      now = new Date(now.getTime() + ms);
    },
  };
}

async function journal(
  s: { handle: Awaited<ReturnType<typeof chain.database.open>> },
  from: string,
) {
  return s.handle.db
    .selectFrom('funding_transactions')
    .select(['id', 'kind', 'status', 'beneficiary', 'value_wei'])
    .where('from_address', '=', from)
    .orderBy('created_at')
    .execute();
}

describe('POST /v1/signer/… (two steps)', () => {
  it('previews, confirms once, replays without sending, and journals and audits like the CLI', async () => {
    const s = await start();
    try {
      const preview = await s.op('fund', {
        dry_run: true,
        deposit_wei: parseEther('1').toString(),
        reserve_wei: parseEther('0.5').toString(),
      });
      expect(preview.status).toBe(200);
      expect(preview.body).toMatchObject({
        operation: 'fund',
        from: s.account.wallet.address,
        beneficiary: s.account.wallet.address,
        value_wei: parseEther('1.5').toString(),
        eth_wei: parseEther('10').toString(),
        caps: [{ name: 'gas_reserve', ok: true }],
      });
      const gas = preview.body.gas as { limit: string; price_wei: string; cost_wei: string };
      expect(BigInt(gas.limit)).toBeGreaterThan(21_000n);
      expect(BigInt(gas.cost_wei)).toBe(BigInt(gas.limit) * BigInt(gas.price_wei));
      // A preview sends nothing.
      expect(await journal(s, s.account.wallet.address)).toEqual([]);

      const token = preview.body.confirmation_token as string;
      const [first, second] = await Promise.all([
        s.op('fund', { confirmation_token: token }),
        s.op('fund', { confirmation_token: token }),
      ]);
      // Concurrent confirmations: one sends; the other is told it is executing (or replays).
      const statuses = [first.status, second.status].sort();
      expect(statuses[0]).toBe(200);
      const done = first.status === 200 ? first : second;
      expect(done.body).toMatchObject({
        replayed: false,
        transaction: { kind: 'fund', status: 'confirmed', origin: 'manual' },
      });
      const other = first.status === 200 ? second : first;
      if (other.status !== 200) expect(other.body.error).toBe('ConfirmationUsed');

      const again = await s.op('fund', { confirmation_token: token });
      expect(again.status).toBe(200);
      expect(again.body).toMatchObject({ replayed: true, transaction: done.body.transaction });
      expect(await journal(s, s.account.wallet.address)).toHaveLength(1);
      expect(await senderInfo(chain.livepeer, s.account.wallet.address)).toMatchObject({
        deposit: parseEther('1'),
        reserve: parseEther('0.5'),
      });
      const audit = await s.handle.db
        .selectFrom('audit_log')
        .select(['actor', 'action', 'subject'])
        .where('action', 'like', 'signer.%')
        .orderBy('id')
        .execute();
      expect(audit).toHaveLength(1);
      expect(audit[0]).toMatchObject({
        action: 'signer.fund',
        subject: done.body.transaction.id,
        actor: expect.stringMatching(/^key_/),
      });

      // Unlock, refused twice, withdraw refused early, then allowed after the unlock period.
      const unlock = await s.op('unlock', { dry_run: true });
      expect(unlock.body).toMatchObject({ operation: 'unlock', value_wei: '0', caps: [] });
      const unlocked = await s.op('unlock', { confirmation_token: unlock.body.confirmation_token });
      expect(unlocked.body.transaction).toMatchObject({ kind: 'unlock', status: 'confirmed' });
      const twice = await s.op('unlock', { dry_run: true });
      expect(twice.status).toBe(409);
      expect(twice.body.error).toBe('UnlockPending');
      const early = await s.op('withdraw', { dry_run: true });
      expect(early.status).toBe(409);
      expect(early.body).toMatchObject({
        error: 'UnlockNotFinished',
        message: expect.stringContaining('round 102'),
      });
      await chain.livepeer.advanceRound();
      await chain.livepeer.advanceRound();
      const withdraw = await s.op('withdraw', { dry_run: true });
      expect(withdraw.status).toBe(200);
      const withdrawn = await s.op('withdraw', {
        confirmation_token: withdraw.body.confirmation_token,
      });
      expect(withdrawn.body.transaction).toMatchObject({ kind: 'withdraw', status: 'confirmed' });
      const empty = await s.op('withdraw', { dry_run: true });
      expect(empty.status).toBe(409);
      expect(empty.body.error).toBe('NothingToWithdraw');
      const none = await s.op('cancel-unlock', { dry_run: true });
      expect(none.status).toBe(409);
      expect(none.body.error).toBe('NoUnlockPending');
      expect((await journal(s, s.account.wallet.address)).map((r) => r.kind)).toEqual([
        'fund',
        'unlock',
        'withdraw',
      ]);
    } finally {
      await s.running.close();
    }
  });

  it('funds another account with fund-for, and cancels an unlock', async () => {
    const s = await start();
    try {
      const gateway = Wallet.createRandom().address;
      const preview = await s.op('fund-for', {
        dry_run: true,
        beneficiary: gateway.toLowerCase(),
        deposit_wei: '1000',
        reserve_wei: '500',
      });
      expect(preview.status).toBe(200);
      expect(preview.body.beneficiary).toBe(gateway);
      const done = await s.op('fund-for', { confirmation_token: preview.body.confirmation_token });
      expect(done.body.transaction).toMatchObject({ beneficiary: gateway, status: 'confirmed' });
      expect(await senderInfo(chain.livepeer, gateway)).toMatchObject({
        deposit: 1000n,
        reserve: 500n,
      });
      // The signer's own deposit is untouched.
      expect((await senderInfo(chain.livepeer, s.account.wallet.address)).deposit).toBe(0n);

      const fund = await s.op('fund', { dry_run: true, deposit_wei: '10', reserve_wei: '10' });
      await s.op('fund', { confirmation_token: fund.body.confirmation_token });
      const unlock = await s.op('unlock', { dry_run: true });
      await s.op('unlock', { confirmation_token: unlock.body.confirmation_token });
      const cancel = await s.op('cancel-unlock', { dry_run: true });
      expect(cancel.status).toBe(200);
      const cancelled = await s.op('cancel-unlock', {
        confirmation_token: cancel.body.confirmation_token,
      });
      expect(cancelled.body.transaction).toMatchObject({
        kind: 'cancel_unlock',
        status: 'confirmed',
      });
      expect((await senderInfo(chain.livepeer, s.account.wallet.address)).withdrawRound).toBe(0n);
    } finally {
      await s.running.close();
    }
  });

  it('refuses over a cap or beyond the ETH it holds, and explains the caps', async () => {
    const s = await start(
      {
        // A policy whose targets are met at once (1 wei each), so only its caps matter here.
        SIGNER_TARGET_DEPOSIT_WEI: '1',
        SIGNER_TARGET_RESERVE_WEI: '1',
        SIGNER_MAX_PER_TX_WEI: parseEther('1').toString(),
        SIGNER_MAX_PER_DAY_WEI: parseEther('1.5').toString(),
      },
      '3',
    );
    try {
      const overTx = await s.op('fund', {
        dry_run: true,
        deposit_wei: parseEther('1.2').toString(),
      });
      expect(overTx.status).toBe(409);
      expect(overTx.body).toMatchObject({ error: 'CapExceeded', caps: ['max_per_tx'] });
      expect(overTx.body.message).toContain('SIGNER_MAX_PER_TX_WEI');

      const poor = await s.op('fund', { dry_run: true, deposit_wei: parseEther('5').toString() });
      expect(poor.status).toBe(409);
      expect(poor.body.error).toBe('InsufficientEth');

      const ok = await s.op('fund', { dry_run: true, deposit_wei: parseEther('1').toString() });
      expect(ok.status).toBe(200);
      expect(ok.body.caps.map((c: { name: string; ok: boolean }) => [c.name, c.ok])).toEqual([
        ['max_per_tx', true],
        ['max_per_day', true],
        ['gas_reserve', true],
      ]);
      // A second preview taken now is within the daily cap; once the first is sent it is not,
      // and its confirmation is refused when executed.
      const later = await s.op('fund', { dry_run: true, deposit_wei: parseEther('1').toString() });
      expect(later.status).toBe(200);
      await s.op('fund', { confirmation_token: ok.body.confirmation_token });
      const refused = await s.op('fund', { confirmation_token: later.body.confirmation_token });
      expect(refused.status).toBe(409);
      expect(refused.body).toMatchObject({ error: 'CapExceeded', caps: ['max_per_day'] });
      // The refused token is spent: presenting it again says so.
      const reused = await s.op('fund', { confirmation_token: later.body.confirmation_token });
      expect(reused.body.error).toBe('ConfirmationUsed');
      const manual = (await journal(s, s.account.wallet.address)).filter(
        (r) => r.value_wei === parseEther('1').toString(),
      );
      expect(manual).toHaveLength(1);
    } finally {
      await s.running.close();
    }
  });

  it('lets exactly one of two concurrent executions on two replicas through the daily cap', async () => {
    const env = {
      SIGNER_TARGET_DEPOSIT_WEI: '1',
      SIGNER_TARGET_RESERVE_WEI: '1',
      SIGNER_MAX_PER_TX_WEI: parseEther('1').toString(),
      SIGNER_MAX_PER_DAY_WEI: parseEther('1.5').toString(),
    };
    const s = await start(env, '5');
    // A second replica: same database, same keystore and settings.
    const other = await startSignerApp(
      s.handle,
      signerEnv(chain.anvil.url, chain.livepeer, s.account, env),
    );
    try {
      const opOn = async (url: string, body: unknown) =>
        call({ app: s.running.app, url } as never, 'POST', '/v1/signer/fund', {
          headers: bearer(s.admin.secret),
          body,
        });
      const one = parseEther('1').toString();
      // Each preview is within the cap on its own (nothing sent yet); together they are not.
      const a = await opOn(s.running.url, { dry_run: true, deposit_wei: one });
      const b = await opOn(other.url, { dry_run: true, deposit_wei: one });
      expect([a.status, b.status]).toEqual([200, 200]);
      const results = await Promise.all([
        opOn(s.running.url, { confirmation_token: a.body.confirmation_token }),
        opOn(other.url, { confirmation_token: b.body.confirmation_token }),
      ]);
      expect(results.map((r) => r.status).sort()).toEqual([200, 409]);
      const refused = results.find((r) => r.status === 409)!;
      expect(refused.body).toMatchObject({ error: 'CapExceeded', caps: ['max_per_day'] });
      const sent = (await journal(s, s.account.wallet.address)).filter(
        (r) => r.value_wei === one && r.status !== 'failed',
      );
      expect(sent).toHaveLength(1);
      // On chain too (the policy's own 1-wei top-up aside): one deposit of 1 ETH.
      const deposits = (await depositEvents(chain.livepeer, s.account.wallet.address)).filter(
        (e) => 'args' in e && e.args.amount === parseEther('1'),
      );
      expect(deposits).toHaveLength(1);
    } finally {
      await other.close();
      await s.running.close();
    }
  });

  it('refuses hostile bodies, foreign, expired and mismatched tokens, and never sends', async () => {
    const s = await start();
    try {
      for (const body of [
        {},
        { dry_run: false },
        { dry_run: 'yes', deposit_wei: '1' },
        { dry_run: true },
        { dry_run: true, deposit_wei: '0', reserve_wei: '0' },
        { dry_run: true, deposit_wei: '-1' },
        { dry_run: true, deposit_wei: '1e18' },
        { dry_run: true, deposit_wei: 1000 },
        { dry_run: true, deposit_wei: '9'.repeat(79) },
        { dry_run: true, deposit_wei: ((1n << 256n) + 0n).toString() },
        { dry_run: true, deposit_wei: '1', beneficiary: Wallet.createRandom().address },
        { dry_run: true, deposit_wei: '1', confirmation_token: `sgc_${'a'.repeat(43)}` },
        { confirmation_token: `sgc_${'a'.repeat(43)}`, deposit_wei: '1' },
        { confirmation_token: 'not a token' },
        { confirmation_token: `sgc_${'a'.repeat(43)}'; drop table audit_log;--` },
      ]) {
        const response = await s.op('fund', body);
        expect(response.status, JSON.stringify(body)).toBe(400);
        expect(response.body.error).toBe('InvalidRequest');
      }
      for (const body of [
        { dry_run: true, deposit_wei: '1' },
        { dry_run: true, beneficiary: '0x1234', deposit_wei: '1' },
      ]) {
        const response = await s.op('fund-for', body);
        expect(response.status, JSON.stringify(body)).toBe(400);
      }
      const unlockExtra = await s.op('unlock', { dry_run: true, deposit_wei: '1' });
      expect(unlockExtra.status).toBe(400);

      const unknown = await s.op('fund', { confirmation_token: `sgc_${'a'.repeat(43)}` });
      expect(unknown.status).toBe(409);
      expect(unknown.body.error).toBe('ConfirmationInvalid');

      const preview = await s.op('fund', { dry_run: true, deposit_wei: '1' });
      const token = preview.body.confirmation_token as string;
      // Another operation's path, and another operator, cannot use it.
      const wrongKind = await s.op('unlock', { confirmation_token: token });
      expect(wrongKind.body.error).toBe('ConfirmationInvalid');
      const other = await adminKey(s.t);
      const foreign = await s.op('fund', { confirmation_token: token }, other.secret);
      expect(foreign.body.error).toBe('ConfirmationInvalid');

      const stale = await s.op('fund', { dry_run: true, deposit_wei: '2' });
      s.advance(CONFIRMATION_TTL_MS + 1);
      const expired = await s.op('fund', { confirmation_token: stale.body.confirmation_token });
      expect(expired.status).toBe(409);
      expect(expired.body).toMatchObject({
        error: 'ConfirmationInvalid',
        message: expect.stringContaining('expired'),
      });
      expect(await journal(s, s.account.wallet.address)).toEqual([]);
    } finally {
      await s.running.close();
    }
  });

  it('answers 503 when the signer is disabled', async () => {
    const handle = await chain.database.open();
    const running = await startSignerApp(handle, {});
    try {
      const admin = await adminKey({ app: running.app });
      const response = await call({ url: running.url } as never, 'POST', '/v1/signer/unlock', {
        headers: bearer(admin.secret),
        body: { dry_run: true },
      });
      expect(response.status).toBe(503);
      expect(validate('POST', '/v1/signer/unlock', 503, response.body)).toBeNull();
    } finally {
      await running.close();
    }
  });
});
