import { expect, it } from 'vitest';
import { deployLivepeer, startAnvil } from '../support/anvil.ts';
it('deploys', async () => {
  const anvil = await startAnvil();
  const lp = await deployLivepeer(anvil);
  expect(await lp.ticketBroker.getFunction('unlockPeriod')()).toBe(2n);
  await anvil.stop();
}, 120_000);
