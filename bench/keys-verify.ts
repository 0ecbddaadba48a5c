// API key verification: in process and over HTTP, each against a baseline in the same run.
//
//   node bench/keys-verify.ts [--iterations 1000000] [--requests 20000] [--rounds 2]
//                             [--connections 8] [--keys 2000]
//
// 1. In process, cache hit: `verifier.verify(key)` (format + checksum + SHA-256 cache lookup +
//    constant-time compare + expiry/origin rules) against the bare HMAC-SHA256 of the key + a
//    Map lookup. A hit does not compute the HMAC (the cache is keyed by SHA-256), so this
//    baseline is what a keyed-hash cache would cost, not a floor.
// 2. Over loopback HTTP, the generator in a process of its own (bench/load.ts): GET
//    /v1/auth/verify through the whole app with a cached key (hit), and cycling through more
//    keys than the cache holds (miss: HMAC + one query each), against a bare `node:http`
//    handler in this same process returning the same body and headers. Targets take turns in
//    rounds; requests/s and this process's CPU per request are compared.
// Uses embedded PGlite in memory; logs are off.
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
import type { LoadRequest, LoadResult } from './load.ts';
import { runLoad } from './load.ts';
import { startReport } from './report.ts';

const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: '1000000' },
    requests: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '2' },
    connections: { type: 'string', default: '8' },
    keys: { type: 'string', default: '2000' },
  },
});
const ITERATIONS = Number(values.iterations);
const REQUESTS = Number(values.requests);
const ROUNDS = Number(values.rounds);
const CONNECTIONS = Number(values.connections);
// More keys than the cache holds (API_KEYS_CACHE_MAX at its minimum, 100), used in turn: each
// request evicts the oldest entry and finds its own key gone.
const KEYS = Number(values.keys);
const report = startReport('keys');

const log = createLogger({ level: 'silent' });
const config = parseConfig({
  TOLLHOUSE_SECRET: randomBytes(32).toString('hex'),
  LOG_LEVEL: 'silent',
  HOST: '127.0.0.1',
  API_KEYS_CACHE_MAX: '100',
});
const database = await createDatabase({
  config: { url: null, poolMax: 1, dataDir: mkdtempSync(path.join(os.tmpdir(), 'bench-keys-')) },
  log,
  inMemory: true,
});
const app = await createApp({ config, log, database });
const account = await app.identity.accounts.create({ email: 'bench@example.com', password: null });
const newKey = async (name: string) =>
  (await app.keys.service.create(CLI_CALLER, { accountId: account.id, kind: 'backend', name }))
    .secret;
const secret = await newKey('bench');
const cold: string[] = [];
for (let i = 0; i < KEYS; i++) cold.push(await newKey(`cold-${i}`));

// Per CPU-second of this thread, not per wall-clock second: on a shared machine a loop's wall
// time is mostly how often it was preempted, its CPU time is what it costs.
const opsPerSecond = (iterations: number, cpuMicros: number) => iterations / (cpuMicros / 1e6);
const threadCpu = () => {
  const u = process.threadCpuUsage();
  return u.user + u.system;
};

// --- in process -----------------------------------------------------------------------------
const hash = app.secrets.hmac(KEY_HASH_PURPOSE, secret);
const map = new Map([[hash, { accountId: account.id }]]);
let sink = 0;
function baseline(n: number): number {
  const started = threadCpu();
  for (let i = 0; i < n; i++) {
    if (map.get(app.secrets.hmac(KEY_HASH_PURPOSE, secret)) !== undefined) sink++;
  }
  return threadCpu() - started;
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
async function cached(n: number): Promise<number> {
  const started = threadCpu();
  for (let i = 0; i < n; i++) {
    if ((await verifier.verify(secret, context)) !== null) sink++;
  }
  return threadCpu() - started;
}
// Warm up, then each measured in turn, best of the rounds.
baseline(ITERATIONS / 10);
await cached(ITERATIONS / 10);
let baselineBest = 0;
let cachedBest = 0;
for (let round = 0; round < ROUNDS; round++) {
  baselineBest = Math.max(baselineBest, opsPerSecond(ITERATIONS, baseline(ITERATIONS)));
  cachedBest = Math.max(cachedBest, opsPerSecond(ITERATIONS, await cached(ITERATIONS)));
}
await verifier.close();
if (sink === 0) throw new Error('nothing verified');

// --- over HTTP ------------------------------------------------------------------------------
const server = await startServer(app.handler, {
  host: '127.0.0.1',
  port: 0,
  shutdownTimeoutMs: 1_000,
  log,
});
const origin = `http://127.0.0.1:${server.port}`;
// The bare handler answers with exactly what the app answered (status, headers, body).
const sample = await fetch(`${origin}/v1/auth/verify`, {
  headers: { authorization: `Bearer ${secret}` },
});
const sampleBody = Buffer.from(await sample.arrayBuffer());
if (sample.status !== 200) throw new Error(`verify answered ${sample.status}`);
const sampleHeaders: Record<string, string> = {};
for (const [name, value] of sample.headers) {
  if (!['date', 'connection', 'keep-alive', 'transfer-encoding'].includes(name))
    sampleHeaders[name] = value;
}
const bare = http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, sampleHeaders);
  res.end(sampleBody);
});
await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
const bareOrigin = `http://127.0.0.1:${(bare.address() as { port: number }).port}`;

const verify = (key: string): LoadRequest => ({
  method: 'GET',
  path: '/v1/auth/verify',
  headers: { authorization: `Bearer ${key}` },
});
const targets: Record<string, { origin: string; requests: LoadRequest[] }> = {
  bare: { origin: bareOrigin, requests: [verify(secret)] },
  hit: { origin, requests: [verify(secret)] },
  miss: { origin, requests: cold.map(verify) },
};
interface Tally {
  count: number;
  seconds: number;
  serverCpu: number;
  p50: number[];
}
const tallies: Record<string, Tally> = {};
const measure = async (key: string, count: number) => {
  const { origin: o, requests } = targets[key]!;
  const cpu = process.cpuUsage();
  const result: LoadResult = await runLoad({
    origin: o,
    connections: CONNECTIONS,
    count,
    requests,
  });
  const used = process.cpuUsage(cpu);
  if (result.errors > 0) throw new Error(`${key}: ${result.errors} errors, ${result.firstError}`);
  return { result, serverCpu: used.user + used.system };
};
for (const key of Object.keys(targets)) await measure(key, 2_000); // JIT, connections
for (let round = 0; round < ROUNDS; round++) {
  const keys = Object.keys(targets);
  for (const key of round % 2 === 0 ? keys : keys.reverse()) {
    // A miss costs ~10–30× a hit: a fifth as many keep the run short.
    const { result, serverCpu } = await measure(
      key,
      key === 'miss' ? Math.ceil(REQUESTS / 5) : REQUESTS,
    );
    const t = (tallies[key] ??= { count: 0, seconds: 0, serverCpu: 0, p50: [] });
    t.count += result.count;
    t.seconds += result.seconds;
    t.serverCpu += serverCpu;
    t.p50.push(result.p50);
  }
}
await server.close();
await new Promise((resolve) => bare.close(resolve));
await app.close();
await database.close();

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const rps = (t: Tally) => t.count / t.seconds;
const cpuUs = (t: Tally) => t.serverCpu / t.count;
const b = tallies.bare!;
report.target({
  target: 'cached key, in process ÷ HMAC-SHA256 + Map.get',
  ratio: cachedBest / baselineBest,
  goal: { op: '>=', limit: 1 },
  detail: `${fmt(cachedBest)} vs ${fmt(baselineBest)} per CPU-second`,
});
for (const [key, label, limit] of [
  ['hit', 'GET /v1/auth/verify over HTTP, cached key ÷ bare http handler', 0.5],
  ['miss', 'GET /v1/auth/verify over HTTP, cache miss ÷ bare http handler', 0.25],
] as const) {
  const t = tallies[key]!;
  report.target({
    target: label,
    ratio: rps(t) / rps(b),
    goal: { op: '>=', limit },
    detail: `${fmt(rps(t))} vs ${fmt(rps(b))} req/s, ${CONNECTIONS} conns; server CPU ${cpuUs(t).toFixed(0)} vs ${cpuUs(b).toFixed(0)} µs/req (${(cpuUs(t) / cpuUs(b)).toFixed(2)}×)`,
  });
}
report.finish();
