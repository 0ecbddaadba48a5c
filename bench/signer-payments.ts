// Benchmark of POST /generate-live-payment through the whole app over loopback (API key
// auth, protobuf, one ticket per payment, replay-protected session claim, usage event
// committed before the answer), next to the raw EIP-191 signatures/s of the signing library
// measured in the same run: libsecp256k1 through tiny-secp256k1 (what the signer uses) and
// ethers' Wallet.signMessage (what it used before). A payment costs one signature per ticket
// (the state is sealed with an HMAC, the segCreds signature is cached per stream), so
// signatures/s ÷ tickets per payment is the ceiling of the signing alone on one core.
//
// Each measurement runs in its own child process (see main), the load generator in a process
// of its own again (STREAMS gateways, each carrying its state from response to request, as
// go-livepeer does), so its HTTP client shares neither the server's event loop nor its CPU
// accounting; it still shares the machine's two cores.
//
//   node bench/signer-payments.ts                     (PGlite in memory)
//   BENCH_DB=postgres node bench/signer-payments.ts   (a throwaway database in
//                                                     BENCH_DATABASE_URL's server, default local)
//   BENCH_PAYMENTS (default 6000), BENCH_STREAMS (default 128: concurrent payments in flight; 1,500
//   payments/s is ~7,500 live streams paying every 5 s),
//   BENCH_SIGNING_THREADS (SIGNER_SIGNING_THREADS, default 0),
//   BENCH_CPU_PROFILE=file.cpuprofile (the request thread during the measured run)
//   --baseline DIR: also measure the tollhouse checkout in DIR (its own src/ and node_modules,
//   e.g. a `git worktree` of the previous commit), in the same run on the same chain, and
//   print this tree's payments/s as a ratio of DIR's (order baseline, this, this, baseline).
//   A checkout that still serves the signer under /signer/ is called there.
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execFile, spawn } from 'node:child_process';
import type * as AppModule from '../src/app.ts';
import type * as ConfigModule from '../src/config.ts';
import type * as KeysModule from '../src/keys/index.ts';
import type * as DbModule from '../src/database.ts';
import type * as IdsModule from '../src/platform/ids.ts';
import type * as LogModule from '../src/platform/log.ts';
import type * as ServerModule from '../src/platform/server.ts';
import type * as SignerModule from '../src/signer/index.ts';
import type { Contract } from 'ethers';
import { Wallet, getBytes, keccak256, parseEther } from 'ethers';

interface Load {
  url: string;
  authorization: string;
  info: string;
  streams: number;
  perStream: number;
  prefix: string;
  /** 'floor': GET the orchestrator list instead (same authentication, nothing signed). */
  mode: 'pay' | 'floor';
}
interface LoadResult {
  payments: number;
  tickets: number;
  seconds: number;
  /** CPU time of the load generator's process, from its start (µs). */
  cpuMicros: number;
}

const cpuMicros = (u: NodeJS.CpuUsage) => u.user + u.system;

if (process.env.BENCH_SIGNER_LOAD !== undefined) {
  // The load generator.
  const load = JSON.parse(process.env.BENCH_SIGNER_LOAD) as Load;
  const { createWire } = await import('../src/signer/index.ts');
  const wire = createWire();
  let payments = 0;
  let tickets = 0;
  // undici's request API on one keep-alive connection per stream, like go-livepeer's Go HTTP
  // client: fetch() would cost the shared cores several times more per call.
  const { Pool } = await import('undici');
  const target = new URL(load.url);
  const pool = new Pool(target.origin, { connections: load.streams });
  const floorPath = target.pathname.replace('generate-live-payment', 'discover-orchestrators');
  const stream = async (name: string) => {
    let state: { State: string | null; Sig: string | null } = { State: null, Sig: null };
    for (let i = 0; i < load.perStream; i++) {
      if (load.mode === 'floor') {
        const response = await pool.request({
          method: 'GET',
          path: floorPath,
          headers: { authorization: load.authorization },
        });
        await response.body.json();
        if (response.statusCode !== 200) throw new Error(`floor: ${response.statusCode}`);
        payments++;
        continue;
      }
      const response = await pool.request({
        method: 'POST',
        path: target.pathname,
        headers: { authorization: load.authorization, 'content-type': 'application/json' },
        body: JSON.stringify({
          state,
          orchestrator: load.info,
          ManifestID: name,
          inPixels: 1_000_100_000,
        }),
      });
      const body = (await response.body.json()) as { state: typeof state; payment: string };
      if (response.statusCode !== 200) {
        throw new Error(`${response.statusCode} ${JSON.stringify(body)}`);
      }
      state = body.state;
      const payment = wire.decode('Payment', Buffer.from(body.payment, 'base64')) as {
        ticketSenderParams: unknown[];
      };
      tickets += payment.ticketSenderParams.length;
      payments++;
    }
  };
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: load.streams }, (_, i) => stream(`${load.prefix}-${i}`)));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await pool.close();
  process.stdout.write(
    JSON.stringify({
      payments,
      tickets,
      seconds,
      cpuMicros: cpuMicros(process.cpuUsage()),
    } satisfies LoadResult),
  );
} else {
  await main();
}

async function main() {
  const { values } = parseArgs({
    options: { baseline: { type: 'string' }, tree: { type: 'string' } },
    strict: true,
  });
  if (values.tree !== undefined) {
    // A child (see measureIn): one tree, its result as JSON on stdout.
    const given = JSON.parse(process.env.BENCH_CHAIN!) as Omit<Chain, 'wallet'> & { key: string };
    const measured = await measureTree(
      pathToFileURL(`${path.resolve(values.tree)}/`),
      { ...given, wallet: new Wallet(given.key) },
      JSON.parse(process.env.BENCH_SETTINGS!) as { payments: number; streams: number },
    );
    process.stdout.write(JSON.stringify(measured));
    return;
  }
  const { startReport } = await import('./report.ts');
  const report = startReport('signer');
  const { MAX_WIN_PROB, createMessageSigner, createWire } = await import('../src/signer/index.ts');
  const { deployLivepeer, startAnvil } = await import('../test/support/anvil.ts');

  const PAYMENTS = Number(process.env.BENCH_PAYMENTS ?? 6000);
  const STREAMS = Number(process.env.BENCH_STREAMS ?? 128);

  // Raw signatures first (the baselines), on an idle process: the same EIP-191 message shape
  // as a ticket (32 bytes), 300 warm-up signatures, then 3,000 timed.
  const wallet = new Wallet(Wallet.createRandom().privateKey);
  const message = getBytes(keccak256(randomBytes(32)));
  // Per wall-clock second and per CPU-second of this thread: the machine is shared, and CPU
  // time is what other processes cannot take away.
  const rate = async (sign: () => unknown) => {
    for (let i = 0; i < 300; i++) await sign();
    const started = process.hrtime.bigint();
    const cpu = process.threadCpuUsage();
    for (let i = 0; i < 3000; i++) await sign();
    return {
      wall: 3000 / (Number(process.hrtime.bigint() - started) / 1e9),
      cpu: 3000 / (cpuMicros(process.threadCpuUsage(cpu)) / 1e6),
    };
  };
  const fast = createMessageSigner(wallet.privateKey);
  const libsecp = await rate(() => fast(message));
  const ethers = await rate(() => wallet.signMessage(message));
  const libsecpPerSecond = libsecp.wall;

  const anvil = await startAnvil();
  try {
    const livepeer = await deployLivepeer(anvil);
    await anvil.setBalance(wallet.address, parseEther('10'));
    const broker = livepeer.ticketBroker.connect(wallet.connect(anvil.provider)) as Contract;
    await (
      (await broker.getFunction('fundDepositAndReserve')(parseEther('1'), parseEther('1'), {
        value: parseEther('2'),
      })) as { wait(): Promise<unknown> }
    ).wait();
    const wire = createWire();
    const recipient = Wallet.createRandom();
    const block = BigInt(await anvil.provider.getBlockNumber());
    const minimal = (v: bigint) =>
      getBytes(`0x${v.toString(16).padStart(2 * Math.ceil(v.toString(16).length / 2), '0')}`);
    // Wrapped in a PaymentResult, as go-livepeer's gateway sends it (docs/signer.md).
    const info = Buffer.from(
      wire.encode('PaymentResult', {
        info: {
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
        },
      }),
    ).toString('base64');
    const chain = { anvilUrl: anvil.url, controller: livepeer.controller, wallet, info };
    const settings = { payments: PAYMENTS, streams: STREAMS };

    // Each measurement runs in a fresh child process (measureIn): in one process a second app
    // ran ~15 % slower than the first (the first one's heap and PGlite memory still to be
    // collected), which made any in-process comparison favour whichever tree ran first. With a
    // baseline the order is baseline, this, this, baseline (half the payments each time), and
    // each tree's two runs are added up, so drift of the shared machine cancels to first order.
    const thisTree = fileURLToPath(new URL('../', import.meta.url));
    const measureIn = (tree: string, payments: number) =>
      new Promise<Measured>((resolve, reject) => {
        execFile(
          process.execPath,
          [fileURLToPath(import.meta.url), '--tree', tree],
          {
            env: {
              ...process.env,
              BENCH_CHAIN: JSON.stringify({ ...chain, wallet: undefined, key: wallet.privateKey }),
              BENCH_SETTINGS: JSON.stringify({ ...settings, payments }),
            },
            maxBuffer: 1 << 20,
          },
          (error, stdout, stderr) =>
            error
              ? reject(new Error(`${tree}: ${stderr}`, { cause: error }))
              : resolve(JSON.parse(stdout) as Measured),
        );
      });
    let baseline: Measured | null = null;
    let ours: Measured;
    const runs: string[] = [];
    if (values.baseline === undefined) {
      ours = await measureIn(thisTree, settings.payments);
    } else {
      const half = Math.ceil(settings.payments / 2);
      const b1 = await measureIn(values.baseline, half);
      const o1 = await measureIn(thisTree, half);
      const o2 = await measureIn(thisTree, half);
      const b2 = await measureIn(values.baseline, half);
      const rate = (m: Measured) => (m.result.payments / m.result.seconds).toFixed(0);
      runs.push(
        `runs (payments/s): baseline ${rate(b1)}, this ${rate(o1)}, this ${rate(o2)}, baseline ${rate(b2)}`,
      );
      baseline = combine(b1, b2);
      ours = combine(o1, o2);
    }
    const { result, floor } = ours;
    const paymentsPerSecond = result.payments / result.seconds;
    const paymentsPerCpuSecond = result.payments / ours.cpuSeconds;
    const ticketsEach = result.tickets / result.payments;

    const line = (name: string, value: number) =>
      `${name.padEnd(62)} ${value.toFixed(0).padStart(7)} /s  ${(value / libsecpPerSecond).toFixed(3).padStart(6)}× libsecp256k1 signatures/s\n`;
    process.stdout.write(
      `${new Date().toISOString()}  node ${process.version}  ${os.cpus().length} cpus  load ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}  db ${ours.databaseKind}  signing threads ${ours.signingThreads}\n` +
        line('libsecp256k1 (tiny-secp256k1) EIP-191 signatures (baseline)', libsecpPerSecond) +
        line('ethers Wallet.signMessage signatures', ethers.wall) +
        line(
          `generate-live-payment (${STREAMS} streams, ${result.payments} payments, ${ticketsEach.toFixed(2)} tickets each)`,
          paymentsPerSecond,
        ) +
        `payments/s ÷ (libsecp256k1 signatures/s ÷ tickets per payment): ${(paymentsPerSecond / (libsecpPerSecond / ticketsEach)).toFixed(2)} of the signing ceiling\n` +
        `per CPU-second: libsecp256k1 ${libsecp.cpu.toFixed(0)} signatures, ethers ${ethers.cpu.toFixed(0)}, ` +
        `payments ${paymentsPerCpuSecond.toFixed(0)} (tollhouse's threads, not the load generator's nor PostgreSQL's; ` +
        `${((1e6 * ours.cpuSeconds) / result.payments).toFixed(0)} µs each) = ${(paymentsPerCpuSecond / (libsecp.cpu / ticketsEach)).toFixed(2)} of the signing ceiling\n` +
        `load generator: ${(result.cpuMicros / result.payments).toFixed(0)} µs of CPU per payment` +
        (ours.postgresSeconds === null
          ? '\n'
          : `; PostgreSQL backends: ${((1e6 * ours.postgresSeconds) / result.payments).toFixed(0)} µs\n`) +
        `request floor (GET ${ours.path.replace('generate-live-payment', 'discover-orchestrators')}, same auth): ${(floor.payments / floor.seconds).toFixed(0)} /s, ` +
        `${((1e6 * ours.floorCpuSeconds) / floor.payments).toFixed(0)} µs of tollhouse CPU each\n` +
        (baseline === null
          ? ''
          : (() => {
              const before = baseline.result.payments / baseline.result.seconds;
              const beforeCpu = baseline.result.payments / baseline.cpuSeconds;
              return (
                `baseline ${values.baseline} (${baseline.path}): ${before.toFixed(0)} payments/s, ${beforeCpu.toFixed(0)} per CPU-second\n` +
                `this tree / baseline: ${(paymentsPerSecond / before).toFixed(3)}× payments/s, ` +
                `${(paymentsPerCpuSecond / beforeCpu).toFixed(3)}× payments per CPU-second\n` +
                `${runs.join('')}\n`
              );
            })()),
    );
    report.target({
      target: `payments/s (${STREAMS} streams) ÷ raw signatures/s, one thread`,
      ratio: paymentsPerSecond / libsecpPerSecond,
      goal: null,
      detail: `${paymentsPerSecond.toFixed(0)} vs ${libsecpPerSecond.toFixed(0)} /s; ${((1e6 * ours.cpuSeconds) / result.payments).toFixed(0)} µs tollhouse CPU per payment (request floor ${((1e6 * ours.floorCpuSeconds) / floor.payments).toFixed(0)} µs), db ${ours.databaseKind}`,
    });
    report.target({
      // The target: wall-clock rates move with the machine's load (the raw signatures are
      // timed alone, the payments beside their generator), CPU-seconds much less.
      target: 'payments per CPU-second ÷ raw signatures per CPU-second',
      ratio: paymentsPerCpuSecond / libsecp.cpu,
      goal: { op: '>=', limit: 0.25 },
      detail: `${paymentsPerCpuSecond.toFixed(0)} vs ${libsecp.cpu.toFixed(0)}; ${ticketsEach.toFixed(2)} tickets per payment`,
    });
    if (baseline !== null) {
      report.target({
        target: `payments per CPU-second ÷ --baseline checkout`,
        ratio: paymentsPerCpuSecond / (baseline.result.payments / baseline.cpuSeconds),
        goal: null,
        detail: `payments/s ${(paymentsPerSecond / (baseline.result.payments / baseline.result.seconds)).toFixed(2)}×; ${runs.join('')}`,
      });
    }
    report.finish();
  } finally {
    await anvil.stop();
  }
}

type Measured = Awaited<ReturnType<typeof measureTree>>;

/** Two runs of one tree as one: payments, tickets, seconds and CPU added up. */
function combine(a: Measured, b: Measured): Measured {
  const add = (x: LoadResult, y: LoadResult): LoadResult => ({
    payments: x.payments + y.payments,
    tickets: x.tickets + y.tickets,
    seconds: x.seconds + y.seconds,
    cpuMicros: x.cpuMicros + y.cpuMicros,
  });
  return {
    ...a,
    result: add(a.result, b.result),
    floor: add(a.floor, b.floor),
    cpuSeconds: a.cpuSeconds + b.cpuSeconds,
    floorCpuSeconds: a.floorCpuSeconds + b.floorCpuSeconds,
    postgresSeconds:
      a.postgresSeconds === null || b.postgresSeconds === null
        ? null
        : a.postgresSeconds + b.postgresSeconds,
  };
}

interface Chain {
  anvilUrl: string;
  controller: string;
  wallet: Wallet;
  info: string;
}

/**
 * One tollhouse tree (this checkout, or --baseline's) on the shared chain: its own app, its own
 * database, the same signer account and orchestrator. `root` is the tree's directory URL; every
 * module of the service is imported from there, so a baseline runs its own code.
 */
async function measureTree(
  root: URL,
  chain: Chain,
  settings: { payments: number; streams: number },
) {
  const from = async <T>(relative: string) => (await import(new URL(relative, root).href)) as T;
  const { createApp } = await from<typeof AppModule>('src/app.ts');
  const { parseConfig } = await from<typeof ConfigModule>('src/config.ts');
  const { CLI_CALLER } = await from<typeof KeysModule>('src/keys/index.ts');
  // A baseline tree from before src/database.ts had createDatabase in platform/db.ts.
  const { createDatabase } = await from<typeof DbModule>('src/database.ts').catch(() =>
    from<typeof DbModule>('src/platform/db.ts'),
  );
  const { newId } = await from<typeof IdsModule>('src/platform/ids.ts');
  const { createLogger } = await from<typeof LogModule>('src/platform/log.ts');
  const { startServer } = await from<typeof ServerModule>('src/platform/server.ts');
  const { writeKeystore } = await from<typeof SignerModule>('src/signer/index.ts');
  const { createBenchDatabase, postgresCpu, profileWindow } = await import('./support.ts');
  const log = createLogger({ level: 'silent' });

  const dir = mkdtempSync(`${os.tmpdir()}/tollhouse-bench-`);
  await writeKeystore(`${dir}/key.json`, chain.wallet.privateKey, 'bench', { scryptN: 1024 });
  const postgres = process.env.BENCH_DB === 'postgres' ? await createBenchDatabase() : null;
  const config = parseConfig({
    TOLLHOUSE_SECRET: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'silent',
    DATABASE_URL: postgres?.url ?? '',
    ETH_RPC_URL: chain.anvilUrl,
    LIVEPEER_CONTROLLER: chain.controller,
    SIGNER_KEYSTORE_FILE: `${dir}/key.json`,
    SIGNER_PASSWORD: 'bench',
    SIGNER_SIGNING_THREADS: process.env.BENCH_SIGNING_THREADS ?? '0',
    SIGNER_ORCHESTRATORS: 'https://orchestrator.bench:8935',
  });
  const database =
    postgres?.database ?? (await createDatabase({ config: config.database, log, inMemory: true }));
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
    const account = await app.identity.accounts.create({
      email: `${newId('u')}@bench.test`,
      password: null,
    });
    const key = await app.keys.service.create(CLI_CALLER, {
      accountId: account.id,
      kind: 'backend',
      name: 'bench',
      scopes: ['signer'],
    });
    const authorization = `Bearer ${key.secret}`;
    // The signer moved from /signer/ to the root (go-livepeer resolves its paths there).
    const origin = `http://127.0.0.1:${server.port}`;
    const probe = await fetch(`${origin}/discover-orchestrators`, { headers: { authorization } });
    await probe.body?.cancel();
    const signerPath =
      probe.status === 404 ? '/signer/generate-live-payment' : '/generate-live-payment';
    // A fee just above one ticket's EV (inPixels × 1,000 wei vs 1e12 × winProb): after the
    // first payment of a stream, one ticket each.
    const run = (prefix: string, perStream: number, mode: Load['mode'] = 'pay') =>
      new Promise<LoadResult>((resolve, reject) => {
        const load: Load = {
          url: `${origin}${signerPath}`,
          authorization,
          info: chain.info,
          streams: settings.streams,
          perStream,
          prefix,
          mode,
        };
        const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
          env: { ...process.env, BENCH_SIGNER_LOAD: JSON.stringify(load) },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString()));
        child.on('error', reject);
        child.on('exit', (code) =>
          code === 0
            ? resolve(JSON.parse(out) as LoadResult)
            : reject(new Error(`load generator exited ${code}`)),
        );
      });
    await run('warm', 10);
    // The whole process's CPU (request thread, signing threads, PGlite when in process):
    // tollhouse's CPU per payment. PostgreSQL's is not counted.
    const cpuBefore = process.cpuUsage();
    const postgresUsed = postgres === null ? null : await postgresCpu(postgres.name);
    const stopProfile = await profileWindow();
    const result = await run('bench', Math.ceil(settings.payments / settings.streams));
    await stopProfile();
    const postgresSeconds = postgresUsed === null ? null : await postgresUsed();
    const cpuSeconds = cpuMicros(process.cpuUsage(cpuBefore)) / 1e6;
    // The request floor: the same HTTP, middleware and authentication, nothing signed or written.
    const floorCpu = process.cpuUsage();
    const floor = await run('floor', Math.ceil(settings.payments / settings.streams), 'floor');
    const floorCpuSeconds = cpuMicros(process.cpuUsage(floorCpu)) / 1e6;
    return {
      result,
      floor,
      cpuSeconds,
      floorCpuSeconds,
      postgresSeconds,
      path: signerPath,
      databaseKind: database.kind,
      signingThreads: config.signer.signingThreads,
    };
  } finally {
    await server.close();
    await app.close();
    if (postgres !== null) await postgres.drop();
    else await database.close();
  }
}
