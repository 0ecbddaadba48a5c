// In headless Chromium: an operator's signer page against a real chain (anvil with the
// Livepeer contracts): the signer's address, ETH, and TicketBroker deposit and reserve against
// their targets and floors, once the funding policy has run, and the funding history (from
// GET /v1/signer/funding) with the transaction that did it.
import { Wallet, parseEther } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import type { TestApp } from '../support/app.ts';
import { fundedAccount, signerEnv } from '../signer/helpers.ts';
import type { SignerAccount } from '../signer/helpers.ts';
import {
  HAVE_CHROMIUM,
  expectAccessible,
  launch,
  screenshot,
  signIn,
  startConsoleApp,
} from './support.ts';
import { CHAIN_POLL } from '../support/anvil.ts';
import { accountWithPassword, useLivepeerChain } from '../support/fixtures.ts';
import { eventually } from '../support/eventually.ts';

describe.skipIf(!HAVE_CHROMIUM)('console: signer page on a real chain', () => {
  const chain = useLivepeerChain({ database: false });
  let account: SignerAccount;
  let t: TestApp;
  let browser: Browser;

  beforeAll(async () => {
    account = await fundedAccount(chain.anvil, '10');
    t = await startConsoleApp(
      signerEnv(chain.anvil.url, chain.livepeer, account, {
        SIGNER_TARGET_DEPOSIT_WEI: parseEther('1').toString(),
        SIGNER_TARGET_RESERVE_WEI: parseEther('0.5').toString(),
        SIGNER_MAX_PER_TX_WEI: parseEther('2').toString(),
        SIGNER_MAX_PER_DAY_WEI: parseEther('5').toString(),
      }),
    );
    browser = await launch();
  });

  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('shows address, ETH, deposit and reserve against their targets', async () => {
    await accountWithPassword(t, 'signer-op@example.com', { admin: true });
    // The funding policy tops the deposit and reserve up to their targets on its own.
    await eventually(
      async () => {
        const s = await t.app.signer.status();
        return (
          s.view !== null &&
          s.view.sender.depositWei >= parseEther('1') &&
          s.view.sender.reserveWei >= parseEther('0.5')
        );
      },
      { ...CHAIN_POLL, what: 'funded' },
    );
    const page = await signIn(browser, t, 'signer-op@example.com');
    await page.goto(`${t.url}/console/admin/signer`);
    await expect(page.locator('#signer-address').textContent()).resolves.toBe(
      account.wallet.address,
    );
    await expect(page.locator('#signer-eth').textContent()).resolves.toMatch(/^\d+\.\d+ ETH$/);
    await expect(page.locator('#signer-deposit').textContent()).resolves.toMatch(
      /1\.0 ETH\s+\(target 1\.0 ETH, refilled below 0\.\d+ ETH\)/,
    );
    await expect(page.locator('#signer-reserve').textContent()).resolves.toMatch(/target 0\.5 ETH/);
    // One policy transaction (the per-transaction cap is 2 ETH) brought both to target.
    const history = page.getByRole('table', { name: /^Funding transactions, newest first/ });
    expect(await history.getByRole('row').count()).toBe(2);
    await expect(history.getByRole('row').nth(1).innerText()).resolves.toMatch(
      /fund\s+policy\s+confirmed\s+1\.0 ETH\s+0\.5 ETH\s+1\.5 ETH\s+0x[0-9a-f]{64}\s+\(block \d+\)/,
    );
    await expectAccessible(page);
    await screenshot(page, 'signer');
  });

  it('acts: fund, fund for, caps, unlock, early withdraw, cancel — each previewed, then confirmed', async () => {
    const page = await signIn(browser, t, 'signer-op@example.com');
    await page.goto(`${t.url}/console/admin/signer`);
    // The caps are explained where funding is asked for.
    await expect(page.locator('#signer-caps').innerText()).resolves.toMatch(
      /at most 2\.0 ETH \(SIGNER_MAX_PER_TX_WEI\)[\s\S]*5\.0 ETH in any 24 hours[\s\S]*SIGNER_GAS_RESERVE_WEI/,
    );
    const fund = page.locator('form', { has: page.locator('input[value="fund"]') });

    // Over the per-transaction cap: refused at the preview, with the cap named.
    await fund.getByLabel('Deposit (ETH)').fill('2.5');
    await fund.getByRole('button', { name: 'Preview funding…' }).click();
    await expect(page.getByRole('alert').innerText()).resolves.toMatch(/SIGNER_MAX_PER_TX_WEI/);

    // Within the caps: the confirmation shows amounts, gas and caps; nothing is sent yet.
    const before = (await t.app.signer.fundingHistory(null, 100))!.length;
    await fund.getByLabel('Deposit (ETH)').fill('0.2');
    await fund.getByLabel('Reserve (ETH)').fill('0.1');
    await fund.getByRole('button', { name: 'Preview funding…' }).click();
    await page.getByRole('heading', { name: /Confirm: Fund the deposit and reserve/ }).waitFor();
    await expect(page.locator('#preview-deposit').innerText()).resolves.toBe(
      `0.2 ETH (${parseEther('0.2')} wei)`,
    );
    await expect(page.locator('#preview-value').innerText()).resolves.toMatch(/^0\.3 ETH/);
    await expect(page.locator('#preview-gas').innerText()).resolves.toMatch(
      /^\d+ gas at up to \d+ wei: at most [\d.]+ ETH \(\d+ wei\)$/,
    );
    const caps = page.getByRole('table', { name: 'Caps that apply' });
    expect(await caps.getByRole('row').count()).toBe(4);
    expect((await t.app.signer.fundingHistory(null, 100))!.length).toBe(before);
    await expectAccessible(page);
    await screenshot(page, 'signer-confirm');
    const confirmForm = page.locator('form[action="/console/admin/signer/confirm"]');
    const again = {
      csrf: await confirmForm.locator('input[name="csrf"]').inputValue(),
      operation: 'fund',
      confirmation_token: await confirmForm
        .locator('input[name="confirmation_token"]')
        .inputValue(),
    };
    await page.getByRole('button', { name: 'Confirm and send' }).click();
    await expect(page.getByRole('status').first().innerText()).resolves.toMatch(
      /^Done: fund confirmed in 0x[0-9a-f]{64}\.$/,
    );
    const history = page.getByRole('table', { name: /^Funding transactions, newest first/ });
    await expect(history.getByRole('row').nth(1).innerText()).resolves.toMatch(
      /fund\s+manual\s+confirmed\s+0\.2 ETH\s+0\.1 ETH\s+0\.3 ETH/,
    );

    // Posting the same confirmation again (a double click, a resubmitted form) sends nothing.
    const replay = await page.request.post(`${t.url}/console/admin/signer/confirm`, {
      form: again,
      headers: { origin: t.url },
    });
    expect(replay.status()).toBe(200);
    expect(await replay.text()).toMatch(/nothing was sent again/);
    expect((await t.app.signer.fundingHistory(null, 100))!.length).toBe(before + 1);

    // Fund another account.
    const gateway = Wallet.createRandom().address;
    const fundFor = page.locator('form', { has: page.locator('input[value="fund-for"]') });
    await fundFor.getByLabel('Account (0x address)').fill(gateway);
    await fundFor.getByLabel('Deposit (ETH)').fill('0.01');
    await fundFor.getByRole('button', { name: 'Preview funding…' }).click();
    await expect(page.locator('#preview-beneficiary').innerText()).resolves.toBe(gateway);
    await page.getByRole('button', { name: 'Confirm and send' }).click();
    await expect(page.getByRole('status').first().innerText()).resolves.toMatch(/^Done: fund/);
    const broker = chain.livepeer.ticketBroker.getFunction('getSenderInfo');
    const [sender] = (await broker(gateway)) as [[bigint, bigint]];
    expect(sender[0]).toBe(parseEther('0.01'));

    // Unlock; withdrawing before the unlock period ends is refused; cancel the unlock.
    await page.getByRole('button', { name: 'Unlock…' }).click();
    await page.getByText('No funding cap applies').waitFor();
    await page.getByRole('button', { name: 'Confirm and send' }).click();
    await expect(page.getByRole('status').first().innerText()).resolves.toMatch(/^Done: unlock/);
    await page.getByRole('button', { name: 'Withdraw…' }).click();
    await expect(page.getByRole('alert').innerText()).resolves.toMatch(
      /unlock period has not ended/,
    );
    await page.getByRole('button', { name: 'Cancel the unlock…' }).click();
    await page.getByRole('button', { name: 'Confirm and send' }).click();
    await expect(page.getByRole('status').first().innerText()).resolves.toMatch(
      /^Done: cancel unlock/,
    );
    await expectAccessible(page);
    await screenshot(page, 'signer-acted');
  });
});
