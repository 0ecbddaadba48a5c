// Benchmark of POST /signer/generate-live-payment through the whole app over loopback (API key
// auth, protobuf, one ticket per payment, replay-protected session update, usage event
// committed before the answer), next to the raw EIP-191 signatures/s of the signing library
// measured in the same run (ethers' Wallet.signMessage, which the signer uses). A payment
// costs two signatures (ticket, state; the segCreds signature is cached per stream), so
// signatures/s ÷ 2 is the single-core ceiling of the signing alone.
//
//   node bench/signer-payments.ts            (PGlite in memory)
//   DATABASE_URL=postgres://… node bench/signer-payments.ts
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Contract } from 'ethers';
import { Wallet, getBytes, keccak256, parseEther } from 'ethers';
import { createApp } from '../src/app.ts';
import { parseConfig } from '../src/config.ts';
import { CLI_CALLER } from '../src/keys/index.ts';
import { insertAccount } from '../src/identity/index.ts';
import { createDatabase } from '../src/platform/db.ts';
import { newId } from '../src/platform/ids.ts';
import { createLogger } from '../src/platform/log.ts';
import { startServer } from '../src/platform/server.ts';
import { MAX_WIN_PROB, createWire, writeKeystore } from '../src/signer/index.ts';
import { deployLivepeer, startAnvil } from '../test/support/anvil.ts';

const PAYMENTS = Number(process.env.BENCH_PAYMENTS ?? 3000);
const STREAMS = Number(process.env.BENCH_STREAMS ?? 16);
const log = createLogger({ level: 'silent' });

function rate(n: number, started: bigint) {
  return n / (Number(process.hrtime.bigint() - started) / 1e9);
}

// Raw signatures first (the baseline), on an idle process.
const wallet = new Wallet(Wallet.createRandom().privateKey);
const digest = getBytes(keccak256(randomBytes(32)));
for (let i = 0; i < 300; i++) {
  await wallet.signMessage(digest);
}
let t = process.hrtime.bigint();
for (let i = 0; i < 2000; i++) await wallet.signMessage(digest);
const ethersPerSecond = rate(2000, t);

const anvil = await startAnvil();
const livepeer = await deployLivepeer(anvil);
await anvil.setBalance(wallet.address, parseEther('10'));
const broker = livepeer.ticketBroker.connect(wallet.connect(anvil.provider)) as Contract;
await (
  (await broker.getFunction('fundDepositAndReserve')(parseEther('1'), parseEther('1'), {
    value: parseEther('2'),
  })) as { wait(): Promise<unknown> }
).wait();
const dir = (await import('node:fs')).mkdtempSync(`${os.tmpdir()}/tollhouse-bench-`);
await writeKeystore(`${dir}/key.json`, wallet.privateKey, 'bench', { scryptN: 1024 });
const config = parseConfig({
  TOLLHOUSE_SECRET: randomBytes(32).toString('hex'),
  LOG_LEVEL: 'silent',
  DATABASE_URL: process.env.DATABASE_URL ?? '',
  ETH_RPC_URL: anvil.url,
  LIVEPEER_CONTROLLER: livepeer.controller,
  SIGNER_KEYSTORE_FILE: `${dir}/key.json`,
  SIGNER_PASSWORD: 'bench',
});
const database = await createDatabase({ config: config.database, log, inMemory: true });
const app = await createApp({ config, log, database });
const server = await startServer(app.handler, {
  host: '127.0.0.1',
  port: 0,
  shutdownTimeoutMs: 2000,
  log,
});
try {
  while (app.signer.snapshot()?.sender.depositWei !== parseEther('1')) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const account = await insertAccount(database.db, {
    id: newId('acct'),
    email: `${newId('u')}@bench.test`,
  });
  const key = await app.keys.service.create(CLI_CALLER, {
    accountId: account.id,
    kind: 'backend',
    name: 'bench',
    scopes: ['signer'],
  });
  const wire = createWire();
  const recipient = Wallet.createRandom();
  const block = BigInt(await anvil.provider.getBlockNumber());
  const minimal = (v: bigint) =>
    getBytes(`0x${v.toString(16).padStart(2 * Math.ceil(v.toString(16).length / 2), '0')}`);
  const info = Buffer.from(
    wire.encode('OrchestratorInfo', {
      transcoder: 'https://orchestrator.bench:8935',
      ticketParams: {
        recipient: getBytes(recipient.address),
        faceValue: minimal(1_000_000_000_000n),
        winProb: minimal(MAX_WIN_PROB - 1n),
        recipientRandHash: getBytes(keccak256(randomBytes(32))),
        seed: randomBytes(16),
        expirationBlock: minimal(block + 1_000_000n),
      },
      priceInfo: { pricePerUnit: '1000', pixelsPerUnit: '1' },
      address: getBytes(recipient.address),
      authToken: {
        token: randomBytes(16),
        sessionId: 's',
        expiration: String(Math.floor(Date.now() / 1000) + 3600),
      },
    }),
  ).toString('base64');
  const url = `http://127.0.0.1:${server.port}/signer/generate-live-payment`;
  const headers = { authorization: `Bearer ${key.secret}`, 'content-type': 'application/json' };
  // A fee just above one ticket's EV: after the first payment of a stream, one ticket each.
  let done = 0;
  let tickets = 0;
  const stream = async (name: string, count: number) => {
    let state: { State: string | null; Sig: string | null } = { State: null, Sig: null };
    for (let i = 0; i < count; i++) {
      const response = await fetch(url, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          state,
          orchestrator: info,
          ManifestID: name,
          inPixels: 1_000_100_000,
        }),
      });
      const body = (await response.json()) as { state: typeof state; payment: string };
      if (response.status !== 200) throw new Error(`${response.status} ${JSON.stringify(body)}`);
      state = body.state;
      tickets += (
        wire.decode('Payment', Buffer.from(body.payment, 'base64')) as {
          ticketSenderParams: unknown[];
        }
      ).ticketSenderParams.length;
      done++;
    }
  };
  await Promise.all(Array.from({ length: STREAMS }, (_, i) => stream(`warm-${i}`, 10)));
  done = 0;
  tickets = 0;
  t = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: STREAMS }, (_, i) => stream(`bench-${i}`, Math.ceil(PAYMENTS / STREAMS))),
  );
  const paymentsPerSecond = rate(done, t);

  const line = (name: string, value: number, baseline: number) =>
    `${name.padEnd(58)} ${value.toFixed(0).padStart(8)} /s  ${(value / baseline).toFixed(3).padStart(7)}× ethers signMessage\n`;
  process.stdout.write(
    `${new Date().toISOString()}  node ${process.version}  ${os.cpus().length} cpus  load ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}  db ${database.kind}\n` +
      line('ethers Wallet.signMessage (baseline)', ethersPerSecond, ethersPerSecond) +
      line(
        `generate-live-payment (${STREAMS} streams, ${(tickets / done).toFixed(2)} tickets each)`,
        paymentsPerSecond,
        ethersPerSecond,
      ) +
      `payments/s ÷ (signatures/s ÷ 2): ${(paymentsPerSecond / (ethersPerSecond / 2)).toFixed(2)} of the signing ceiling\n`,
  );
} finally {
  await server.close();
  await app.close();
  await database.close();
  await anvil.stop();
}
