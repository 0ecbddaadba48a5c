// Front door overhead: a small JSON request (POST /text-to-image) through tollhouse versus
// straight to the same fake go-livepeer gateway, in the same run.
//
//   node bench/gateway-proxy.ts [--requests 20000] [--connections 16] [--rounds 2] [--slices 5]
//                               [--baseline DIR]
//
// Three processes: the fake gateway (test/support/fake-gateway.ts), `tollhouse serve` (logs
// off, limits off, a real API key, metering on, on PostgreSQL — BENCH_DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/test; the benchmark creates its own database there and
// drops it at the end) and this one, the load generator (an
// undici Pool with keep-alive, `connections` requests in flight, the same for every target).
// Within a round the targets take turns in short slices so all see the same machine load.
// Printed per target: requests/s, p50/p99, and CPU time per request of each process (from
// /proc: generator, fake, tollhouse, its PostgreSQL backends) — the fair comparison on
// shared cores. A bare Node proxy (no auth, limits or metering) is measured as the floor.
//
// Every process gets the same CPU allowance: none is pinned (an earlier --pin gave direct one
// core and the proxied path two, which flattered the proxy; issue #21). `/healthz` on tollhouse
// is compared with a bare `node:http` handler returning the same body (in the bare proxy's
// process), and the front door's CPU per request with the bare proxy's.
//
// --baseline DIR: also serves the tollhouse of another checkout (e.g. `git worktree add
// /tmp/base main`, with node_modules) on the same database and key, measured in the same
// slices (front door and /healthz): a change's before and after under the same machine load.
// Each slice's CPU is read 300 ms after its last answer, so what it leaves behind (metering's
// batched writes, garbage collection) is counted in it.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Pool } from 'undici';
import { startReport } from './report.ts';
import { cpuSeconds } from './support.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '20000' },
    connections: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '2' },
    slices: { type: 'string', default: '5' },
    baseline: { type: 'string' },
  },
});
const REQUESTS = Number(values.requests);
const CONNECTIONS = Number(values.connections);
const ROUNDS = Number(values.rounds);
const SLICES = Number(values.slices);
const BASELINE = values.baseline === undefined ? undefined : path.resolve(values.baseline);
const ROOT = path.resolve(import.meta.dirname, '..');
const SETTLE_MS = 300;
const BODY = JSON.stringify({
  prompt: 'a lighthouse at dusk',
  model_id: 'ByteDance/SDXL-Lightning',
  width: 1024,
  height: 1024,
});

function run(args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}`))));
  });
}

/** Starts a child and resolves with the first stdout line matching `ready`. */
function start(args: string[], env: Record<string, string>, ready: RegExp) {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env } });
  return new Promise<{ child: ChildProcess; match: RegExpMatchArray }>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const match = ready.exec(out);
      if (match) resolve({ child, match });
    });
    child.stderr.on('data', (c: Buffer) => process.stderr.write(c));
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}`)));
  });
}

async function waitForReady(url: string) {
  // Up to 2 minutes: on a loaded 2-core machine tollhouse takes well over 20 s to start.
  for (let i = 0; i < 1200; i++) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('tollhouse did not become ready');
}

interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** CPU time per request in µs (user, system), per process (Linux /proc), in the phase. */
  cpu: Record<string, { user: number; system: number }>;
}

/** Roles whose CPU is accounted: the generator itself plus the pids `roles()` returns. */
let roles: () => Promise<Record<string, number[]>> = async () => ({});
async function cpuSnapshot(): Promise<Record<string, { user: number; system: number }>> {
  const own = process.cpuUsage();
  const out: Record<string, { user: number; system: number }> = {
    generator: { user: own.user / 1e6, system: own.system / 1e6 },
  };
  for (const [role, pids] of Object.entries(await roles())) {
    const total = { user: 0, system: 0 };
    for (const pid of pids) {
      const used = cpuSeconds(pid);
      total.user += used.user;
      total.system += used.system;
    }
    out[role] = total;
  }
  return out;
}

/**
 * One target under load: its own undici Pool (the same generator, body and connection count
 * for every target), measured slice by slice so that all targets take turns within a round
 * and see the same machine load (other work on these 2 cores comes and goes within seconds).
 */
class Target {
  private readonly pool: Pool;
  private readonly latencies: number[] = [];
  private seconds = 0;
  private errors = 0;
  private readonly cpuUsed: Result['cpu'] = {};
  private readonly headers: Record<string, string>;
  private readonly method: 'POST' | 'GET';
  private readonly path: string;
  constructor(
    origin: string,
    headers: Record<string, string>,
    method: 'POST' | 'GET' = 'POST',
    path = '/text-to-image',
  ) {
    this.headers = headers;
    this.method = method;
    this.path = path;
    this.pool = new Pool(origin, { connections: CONNECTIONS, pipelining: 1 });
  }

  private async run(count: number, record: boolean): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < count) {
        next++;
        const started = performance.now();
        try {
          const response = await this.pool.request({
            path: this.path,
            method: this.method,
            headers:
              this.method === 'POST'
                ? { 'content-type': 'application/json', ...this.headers }
                : this.headers,
            body: this.method === 'POST' ? BODY : null,
          });
          await response.body.arrayBuffer();
          if (response.statusCode !== 200 && record) this.errors++;
        } catch {
          if (record) this.errors++;
        }
        if (record) this.latencies.push(performance.now() - started);
      }
    };
    await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  }

  /** Connections, JIT, the key cache. */
  warm(): Promise<void> {
    return this.run(2000, false);
  }

  async slice(count: number): Promise<void> {
    const cpuBefore = await cpuSnapshot();
    const began = performance.now();
    await this.run(count, true);
    this.seconds += (performance.now() - began) / 1000;
    // Work a slice leaves behind — metering's batched writes (flushed every 100 ms), garbage
    // collection — is counted in that slice, not in the next target's: without this pause
    // the front door's event writes landed partly in the /healthz and bare-proxy slices.
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const cpuAfter = await cpuSnapshot();
    for (const [role, after] of Object.entries(cpuAfter)) {
      const before = cpuBefore[role] ?? { user: 0, system: 0 };
      const used = (this.cpuUsed[role] ??= { user: 0, system: 0 });
      used.user += after.user - before.user;
      used.system += after.system - before.system;
    }
  }

  /** Figures since the last call (one round), then starts over. */
  result(): Result {
    const count = this.latencies.length;
    const sorted = this.latencies.sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(count - 1, Math.floor(q * count))]!;
    const cpu: Result['cpu'] = {};
    for (const [role, used] of Object.entries(this.cpuUsed)) {
      cpu[role] = { user: (used.user * 1e6) / count, system: (used.system * 1e6) / count };
      delete this.cpuUsed[role];
    }
    const result = {
      rps: count / this.seconds,
      p50: at(0.5),
      p99: at(0.99),
      errors: this.errors,
      cpu,
    };
    this.latencies.length = 0;
    this.seconds = 0;
    this.errors = 0;
    return result;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

const report = startReport('gateway');
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-bench-'));
const children: ChildProcess[] = [];
const server = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const name = `tollhouse_bench_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: server });
await admin.connect();
await admin.query(`create database ${name}`);
const databaseUrl = new URL(server);
databaseUrl.pathname = `/${name}`;
try {
  const fake = await start(
    [
      '--input-type=module',
      '-e',
      "import { startFakeGateway } from './test/support/fake-gateway.ts'; const f = await startFakeGateway(); console.log('FAKE ' + f.url); setInterval(() => { f.received.length = 0; }, 1000);",
    ],
    {},
    /FAKE (\S+)/,
  );
  children.push(fake.child);
  const gatewayUrl = fake.match[1]!;

  // Diagnostic floor: the least a Node proxy can do — node:http in, one undici Pool out,
  // body buffered and forwarded, response written back — with no auth, limits or metering.
  // What tollhouse costs above it is the front door's own work.
  const bare = await start(
    [
      '--input-type=module',
      '-e',
      `import http from 'node:http';
       import { Pool } from 'undici';
       const pool = new Pool(${JSON.stringify(gatewayUrl)}, { keepAliveTimeout: 30000 });
       const health = Buffer.from(JSON.stringify({ status: 'ok' }));
       const server = http.createServer((req, res) => {
         if (req.url === '/healthz') {
           req.resume();
           res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': health.length });
           res.end(health);
           return;
         }
         const chunks = [];
         req.on('data', (c) => chunks.push(c));
         req.on('end', () => {
           const headers = { ...req.headers };
           delete headers.host; delete headers.connection; delete headers.authorization;
           pool.dispatch({ path: req.url, method: req.method, headers, body: Buffer.concat(chunks) }, {
             onRequestStart() {},
             onResponseStart(c, status, h) { delete h.connection; delete h['keep-alive']; res.writeHead(status, h); },
             onResponseData(c, chunk) { res.write(chunk); },
             onResponseEnd() { res.end(); },
             onResponseError(c, e) { res.destroy(); },
           });
         });
       });
       server.listen(0, '127.0.0.1', () => console.log('BARE http://127.0.0.1:' + server.address().port));`,
    ],
    {},
    /BARE (\S+)/,
  );
  children.push(bare.child);
  const bareUrl = bare.match[1]!;

  const env = {
    TOLLHOUSE_DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl.toString(),
    TOLLHOUSE_SECRET: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'silent',
    HOST: '127.0.0.1',
    PORT: String(20000 + Math.floor(Math.random() * 20000)),
    GATEWAY_URL: gatewayUrl,
    GATEWAY_PRICES: JSON.stringify({
      'text-to-image': { price_per_unit: '4768371', pixels_per_unit: '1' },
    }),
    GATEWAY_KEY_RATE: '0',
    GATEWAY_KEY_CONCURRENCY: '0',
    GATEWAY_ACCOUNT_RATE: '0',
    GATEWAY_ACCOUNT_CONCURRENCY: '0',
  };
  const created = await run(
    ['src/main.ts', 'keys', 'create', '--email', 'bench@example.com', '--admin'],
    env,
  );
  const secret = /"secret":\s*"([^"]+)"/.exec(created)![1]!;
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const serveAt = (cwd: string, port: string) => {
    const child = spawn(process.execPath, [...nodeArgs, 'src/main.ts', 'serve'], {
      cwd,
      env: { ...process.env, ...env, PORT: port },
      stdio: 'ignore',
    });
    children.push(child);
    return child;
  };
  const serve = serveAt(ROOT, env.PORT);
  const frontUrl = `http://127.0.0.1:${env.PORT}`;
  await waitForReady(frontUrl);
  // --baseline: the other checkout's tollhouse, on the same database and key.
  const baselinePort = String(Number(env.PORT) + 1);
  const baseline = BASELINE === undefined ? null : serveAt(BASELINE, baselinePort);
  const baselineUrl = `http://127.0.0.1:${baselinePort}`;
  if (baseline !== null) await waitForReady(baselineUrl);
  // PostgreSQL's share: the backends connected to the benchmark's database (tollhouse's pool).
  roles = async () => {
    const backends = await admin.query<{ pid: number }>(
      'select pid from pg_stat_activity where datname = $1',
      [name],
    );
    const pids = backends.rows.map((r) => r.pid);
    return {
      fake: [fake.child.pid!],
      tollhouse: [serve.pid!],
      ...(baseline === null ? {} : { 'tollhouse (baseline)': [baseline.pid!] }),
      'bare proxy': [bare.child.pid!],
      postgres: pids,
    };
  };

  const fmt = (r: Result) =>
    `${Math.round(r.rps).toLocaleString('en-US')} / s, p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms${r.errors ? `, ${r.errors} errors` : ''}`;
  const cpuFmt = (r: Result) =>
    Object.entries(r.cpu)
      .filter(([, us]) => us.user + us.system >= 5)
      .map(
        ([role, us]) => `${role} ${Math.round(us.user + us.system)} (user ${Math.round(us.user)})`,
      )
      .join(', ');
  const rows: string[] = [];
  const targets = {
    direct: new Target(gatewayUrl, {}),
    front: new Target(frontUrl, { authorization: `Bearer ${secret}` }),
    bare: new Target(bareUrl, { authorization: `Bearer ${secret}` }),
    // Diagnostic: the same HTTP stack without the front door (what any route costs).
    healthz: new Target(frontUrl, {}, 'GET', '/healthz'),
    bareHealthz: new Target(bareUrl, {}, 'GET', '/healthz'),
    ...(baseline === null
      ? {}
      : {
          baseline: new Target(baselineUrl, { authorization: `Bearer ${secret}` }),
          baselineHealthz: new Target(baselineUrl, {}, 'GET', '/healthz'),
        }),
  };
  for (const target of Object.values(targets)) await target.warm();
  const perSlice = Math.ceil(REQUESTS / SLICES);
  const all: Record<string, Result[]> = {};
  const keep = (key: string, r: Result) => {
    (all[key] ??= []).push(r);
    return r;
  };
  for (let round = 1; round <= ROUNDS; round++) {
    for (let slice = 0; slice < SLICES; slice++) {
      for (const target of Object.values(targets)) await target.slice(perSlice);
    }
    const direct = keep('direct', targets.direct.result());
    const front = keep('front', targets.front.result());
    const floor = keep('bare', targets.bare.result());
    const healthz = keep('healthz', targets.healthz.result());
    const bareHealthz = keep('bareHealthz', targets.bareHealthz.result());
    if (targets.baseline !== undefined) {
      keep('baselineHealthz', targets.baselineHealthz!.result());
      const before = keep('baseline', targets.baseline.result());
      console.log(
        `  baseline checkout: ${fmt(before)} | ${(before.rps / direct.rps).toFixed(2)}× of direct; CPU µs per request: ${cpuFmt(before)}`,
      );
    }
    console.log(
      `  bare Node proxy (no auth, limits, metering): ${fmt(floor)} | ${(floor.rps / direct.rps).toFixed(2)}× of direct; CPU µs per request: ${cpuFmt(floor)}`,
    );
    console.log(`  GET /healthz: tollhouse ${fmt(healthz)}; bare http handler ${fmt(bareHealthz)}`);
    rows.push(
      `round ${round}: direct ${fmt(direct)} | front door ${fmt(front)} | throughput ${(front.rps / direct.rps).toFixed(2)}× of direct, added p50 ${(front.p50 - direct.p50).toFixed(3)} ms`,
    );
    console.log(rows.at(-1));
    console.log(
      `  CPU µs per request — direct: ${cpuFmt(direct)} | front door: ${cpuFmt(front)} | /healthz: ${cpuFmt(healthz)}`,
    );
  }
  for (const target of Object.values(targets)) await target.close();
  // Means over the rounds (each round the same number of requests per target).
  const mean = (key: string, pick: (r: Result) => number) =>
    all[key]!.reduce((sum, r) => sum + pick(r), 0) / all[key]!.length;
  const rps = (key: string) => mean(key, (r) => r.rps);
  const cpuOf = (key: string, role: string) =>
    mean(key, (r) => (r.cpu[role]?.user ?? 0) + (r.cpu[role]?.system ?? 0));
  const n = (v: number) => Math.round(v).toLocaleString('en-US');
  report.target({
    target: 'front door CPU per request ÷ bare undici proxy',
    ratio: cpuOf('front', 'tollhouse') / cpuOf('bare', 'bare proxy'),
    goal: { op: '<=', limit: 1.3 },
    detail: `${cpuOf('front', 'tollhouse').toFixed(0)} vs ${cpuOf('bare', 'bare proxy').toFixed(0)} µs (+ PostgreSQL ${cpuOf('front', 'postgres').toFixed(0)} µs)`,
  });
  report.target({
    target: 'GET /healthz CPU per request ÷ bare http handler',
    ratio: cpuOf('healthz', 'tollhouse') / cpuOf('bareHealthz', 'bare proxy'),
    goal: { op: '<=', limit: 1.2 },
    detail: `${cpuOf('healthz', 'tollhouse').toFixed(0)} vs ${cpuOf('bareHealthz', 'bare proxy').toFixed(0)} µs; ${n(rps('healthz'))} vs ${n(rps('bareHealthz'))} req/s`,
  });
  report.target({
    target: `front door req/s ÷ direct (${CONNECTIONS} connections, shared cores)`,
    ratio: rps('front') / rps('direct'),
    goal: { op: '>=', limit: 0.5 },
    detail: `${n(rps('front'))} vs ${n(rps('direct'))} req/s; bare undici proxy ${n(rps('bare'))} req/s (${(rps('bare') / rps('direct')).toFixed(2)}× direct)`,
  });
  report.target({
    target: 'front door req/s ÷ bare undici proxy',
    ratio: rps('front') / rps('bare'),
    goal: null,
    detail: `added p50 over direct ${(mean('front', (r) => r.p50) - mean('direct', (r) => r.p50)).toFixed(3)} ms`,
  });
  if (all.baselineHealthz !== undefined) {
    report.target({
      target: `GET /healthz CPU per request ÷ --baseline checkout`,
      ratio: cpuOf('healthz', 'tollhouse') / cpuOf('baselineHealthz', 'tollhouse (baseline)'),
      goal: null,
      detail: `${cpuOf('healthz', 'tollhouse').toFixed(0)} vs ${cpuOf('baselineHealthz', 'tollhouse (baseline)').toFixed(0)} µs; req/s ${(rps('healthz') / rps('baselineHealthz')).toFixed(2)}×`,
    });
  }
  if (all.baseline !== undefined) {
    report.target({
      target: `front door CPU per request ÷ --baseline checkout`,
      ratio: cpuOf('front', 'tollhouse') / cpuOf('baseline', 'tollhouse (baseline)'),
      goal: null,
      detail: `${cpuOf('front', 'tollhouse').toFixed(0)} vs ${cpuOf('baseline', 'tollhouse (baseline)').toFixed(0)} µs; req/s ${(rps('front') / rps('baseline')).toFixed(2)}×`,
    });
  }
  console.log(
    `\n${perSlice * SLICES} requests per target and round in ${SLICES} alternating slices, ${CONNECTIONS} connections, node ${process.version}, ${os.cpus().length} CPUs, load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
} finally {
  for (const child of children) child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  rmSync(dataDir, { recursive: true, force: true });
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();
}
report.finish();
