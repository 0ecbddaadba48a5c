// In headless Chromium: an operator's signer page against a real chain (anvil with the
// Livepeer contracts): the signer's address, ETH, and TicketBroker deposit and reserve against
// their targets and floors, once the funding policy has run, and the funding history (from
// GET /v1/signer/funding) with the transaction that did it.
import { parseEther } from 'ethers';
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
});
