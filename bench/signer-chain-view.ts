// Benchmark of the signer's chain view on a local anvil chain: what one full refresh of the
// view costs (sender info, rounds, block hash, L1 block, balance), what building the status
// document costs, and what a read of the cached snapshot costs — each next to the baseline of
// one plain JSON-RPC round trip (eth_blockNumber) measured in the same run. Also the one-off
// cost of decrypting a standard (geth N = 2^18) keystore at start-up.
//
//   node bench/signer-chain-view.ts
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wallet, parseEther } from 'ethers';
import { parseConfig } from '../src/config.ts';
import { createDatabase } from '../src/database.ts';
import { createLogger } from '../src/platform/log.ts';
import { migrateToLatest } from '../src/platform/migrations.ts';
import { createSignerService, openKeystore, writeKeystore } from '../src/signer/index.ts';
import { deployLivepeer, startAnvil } from '../test/support/anvil.ts';

const log = createLogger({ level: 'silent' });

async function measure(name: string, iterations: number, run: () => unknown) {
  for (let i = 0; i < Math.min(20, iterations); i++) await run(); // warm up
  const started = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await run();
  const ns = Number(process.hrtime.bigint() - started);
  return { name, iterations, microsPerOp: ns / 1000 / iterations };
}

const anvil = await startAnvil();
const database = await createDatabase({
  config: { url: null, poolMax: 1, dataDir: os.tmpdir() },
  log,
  inMemory: true,
});
try {
  const livepeer = await deployLivepeer(anvil);
  await migrateToLatest(database.db);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-bench-'));
  const wallet = new Wallet(Wallet.createRandom().privateKey);
  await anvil.setBalance(wallet.address, parseEther('10'));
  const keystoreFile = path.join(dir, 'key.json');
  await writeKeystore(keystoreFile, wallet.privateKey, 'bench', { scryptN: 1024 });
  const config = parseConfig({
    ETH_RPC_URL: anvil.url,
    LIVEPEER_CONTROLLER: livepeer.controller,
    SIGNER_KEYSTORE_FILE: keystoreFile,
    SIGNER_PASSWORD: 'bench',
    SIGNER_TARGET_DEPOSIT_WEI: '1000',
    SIGNER_TARGET_RESERVE_WEI: '1000',
    SIGNER_MAX_PER_TX_WEI: '10000',
    SIGNER_MAX_PER_DAY_WEI: '10000',
  });
  const signer = await createSignerService({ config: config.signer, db: database.db, log });
  await signer.operate({ kind: 'fund', depositWei: 1000n, reserveWei: 1000n, actor: 'bench' });

  const baseline = await measure('eth_blockNumber round trip (baseline)', 300, () =>
    anvil.rpc('eth_blockNumber'),
  );
  const results = [
    baseline,
    await measure('full chain view refresh', 100, () => signer.refresh()),
    await measure('status document (cached view + journal reads)', 300, () => signer.status()),
    await measure('cached snapshot read', 100_000, () => signer.snapshot()),
  ];

  // Standard geth scrypt (N = 2^18), what `tollhouse keystore create` writes: paid once per start.
  const standard = path.join(dir, 'standard.json');
  await writeKeystore(standard, wallet.privateKey, 'bench');
  results.push(
    await measure('keystore decrypt, N = 2^18 (once per start)', 3, () =>
      openKeystore(standard, 'bench'),
    ),
  );

  process.stdout.write(
    `${new Date().toISOString()}  node ${process.version}  ${os.cpus().length} cpus\n`,
  );
  for (const r of results) {
    const ratio = r.microsPerOp / baseline.microsPerOp;
    process.stdout.write(
      `${r.name.padEnd(52)} ${r.microsPerOp.toFixed(2).padStart(12)} µs/op  ${ratio.toFixed(ratio < 0.01 ? 5 : 2).padStart(9)}× baseline  (n=${r.iterations})\n`,
    );
  }
  await signer.stop();
} finally {
  await database.close();
  await anvil.stop();
}
