// API key verification throughput and latency.
//
//   node bench/keys-verify.ts [--iterations 1000000] [--requests 20000]
//
// 1. In-process, cache hit: `verifier.verify(key)` (parse + checksum + HMAC + cache lookup +
//    constant-time compare + expiry/origin checks), against a baseline measured in the same
//    run: the bare HMAC of the key + a Map lookup (the least any keyed-hash cache can do).
// 2. Over loopback HTTP: GET /v1/auth/verify through the whole app (Koa, request ids, metrics,
//    CORS, authenticator), one request at a time on a keep-alive connection, p50/p99/max;
//    beside GET /healthz on the same stack as the transport baseline.
// Uses embedded PGlite in memory; logs are off (a log line per request would dominate).
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createApp } from '../src/app.ts';
import { parseConfig } from '../src/config.ts';
import { CLI_CALLER, KEY_HASH_PURPOSE, createKeyVerifier } from '../src/keys/index.ts';
import { createDatabase } from '../src/database.ts';
import { createLogger } from '../src/platform/log.ts';
import { startServer } from '../src/platform/server.ts';

const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: '1000000' },
    requests: { type: 'string', default: '20000' },
  },
});
const ITERATIONS = Number(values.iterations);
const REQUESTS = Number(values.requests);

const log = createLogger({ level: 'silent' });
const config = parseConfig({
  TOLLHOUSE_SECRET: randomBytes(32).toString('hex'),
  LOG_LEVEL: 'silent',
  HOST: '127.0.0.1',
});
const database = await createDatabase({
  config: { url: null, poolMax: 1, dataDir: mkdtempSync(path.join(os.tmpdir(), 'bench-keys-')) },
  log,
  inMemory: true,
});
const app = await createApp({ config, log, database });
const account = await app.identity.accounts.create({ email: 'bench@example.com', password: null });
const { secret } = await app.keys.service.create(CLI_CALLER, {
  accountId: account.id,
  kind: 'backend',
  name: 'bench',
});

function opsPerSecond(iterations: number, elapsedNs: bigint): number {
  return iterations / (Number(elapsedNs) / 1e9);
}

// --- in process -----------------------------------------------------------------------------
const hash = app.secrets.hmac(KEY_HASH_PURPOSE, secret);
const map = new Map([[hash, { accountId: account.id }]]);
let sink = 0;
function baseline(n: number): bigint {
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    if (map.get(app.secrets.hmac(KEY_HASH_PURPOSE, secret)) !== undefined) sink++;
  }
  return process.hrtime.bigint() - started;
}

const verifier = createKeyVerifier({
  db: database.db,
  listen: database.listen,
  secrets: app.secrets,
  log,
  cacheMax: 100_000,
  lastUsedFlushMs: 30_000,
});
await verifier.start();
const context = { origin: null };
async function cached(n: number): Promise<bigint> {
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    if ((await verifier.verify(secret, context)) !== null) sink++;
  }
  return process.hrtime.bigint() - started;
}

// Warm up JIT and the cache, then measure each twice, interleaved, and keep the best.
baseline(ITERATIONS / 10);
await cached(ITERATIONS / 10);
let baselineBest = 0;
let cachedBest = 0;
for (let round = 0; round < 2; round++) {
  baselineBest = Math.max(baselineBest, opsPerSecond(ITERATIONS, baseline(ITERATIONS)));
  cachedBest = Math.max(cachedBest, opsPerSecond(ITERATIONS, await cached(ITERATIONS)));
}

// --- over HTTP ------------------------------------------------------------------------------
const server = await startServer(app.handler, {
  host: '127.0.0.1',
  port: 0,
  shutdownTimeoutMs: 1_000,
  log,
});
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function get(pathname: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get(
      { host: '127.0.0.1', port: server.port, path: pathname, headers, agent },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      },
    );
    request.on('error', reject);
  });
}

async function latencies(pathname: string, headers: Record<string, string>, n: number) {
  const samples = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const started = process.hrtime.bigint();
    const status = await get(pathname, headers);
    samples[i] = Number(process.hrtime.bigint() - started) / 1e6;
    if (status !== 200) throw new Error(`${pathname} answered ${status}`);
  }
  samples.sort();
  const at = (q: number) => samples[Math.min(n - 1, Math.floor(q * n))] as number;
  const total = samples.reduce((a, b) => a + b, 0);
  return { p50: at(0.5), p99: at(0.99), max: samples[n - 1] as number, rps: n / (total / 1e3) };
}

const auth = { authorization: `Bearer ${secret}` };
await latencies('/v1/auth/verify', auth, 2_000);
await latencies('/healthz', {}, 2_000);
const verifyHttp = await latencies('/v1/auth/verify', auth, REQUESTS);
const healthHttp = await latencies('/healthz', {}, REQUESTS);

agent.destroy();
await server.close();
await verifier.close();
await app.close();
await database.close();

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => `${n.toFixed(3)} ms`;
process.stdout.write(
  [
    `node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), sink ${sink > 0}`,
    '',
    `in process, ${fmt(ITERATIONS)} iterations, best of 2:`,
    `  baseline  HMAC-SHA256 + Map lookup      ${fmt(baselineBest)} /s`,
    `  verify    cached key (full check)       ${fmt(cachedBest)} /s   (${(cachedBest / baselineBest).toFixed(2)}× baseline)`,
    '',
    `over loopback HTTP, ${fmt(REQUESTS)} sequential requests on one keep-alive connection:`,
    `  GET /healthz       p50 ${ms(healthHttp.p50)}  p99 ${ms(healthHttp.p99)}  max ${ms(healthHttp.max)}  ${fmt(healthHttp.rps)} req/s`,
    `  GET /v1/auth/verify p50 ${ms(verifyHttp.p50)}  p99 ${ms(verifyHttp.p99)}  max ${ms(verifyHttp.max)}  ${fmt(verifyHttp.rps)} req/s   (p99 ${(verifyHttp.p99 / healthHttp.p99).toFixed(2)}× /healthz)`,
    '',
  ].join('\n'),
);
