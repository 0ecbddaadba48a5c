// The HTTP load generator, always in a process of its own (issue #21: a client on the server's
// event loop measures the client too). Started by `runLoad()` with its spec in BENCH_LOAD;
// prints its result as one JSON line. undici's Pool with keep-alive, `connections` requests in
// flight, the same for every target a bench compares.
//
// Requests: either a list cycled through (`requests`), or `usage`: fresh 1,000-event batches of
// CloudEvents for POST /v1/usage/events (the events are built here, not in the server).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import type { UsageEvent } from '../src/metering/index.ts';

export interface LoadRequest {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface LoadSpec {
  origin: string;
  connections: number;
  /** Requests to send in all (the last round may be short). */
  count: number;
  requests?: LoadRequest[];
  usage?: {
    path: string;
    authorization: string;
    accounts: string[];
    batch: number;
    /** Event ids start here (distinct runs write distinct events). */
    offset: number;
    source: string;
  };
  /** Expected status (200 when not given). */
  status?: number;
}

export interface LoadResult {
  count: number;
  seconds: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
  firstError: string | null;
  /** CPU time of the generator process during the run (µs). */
  cpuMicros: number;
}

const PIPELINES = [
  ['text-to-image', 'pixels'],
  ['llm', 'tokens'],
  ['audio-to-text', 'milliseconds'],
  ['upscale', 'pixels'],
  ['live-video-to-video', 'seconds'],
] as const;
const MONTH_START = Date.UTC(2026, 9, 1);

/**
 * Usage event `i` as a CloudEvent: the same distribution for every bench that writes usage
 * (and for `usageRow`, its COPY baseline): spread over a month, 1,000s of rollup groups.
 */
export function usageEvent(i: number, source: string, accounts: readonly string[]) {
  const [pipeline, unit] = PIPELINES[i % PIPELINES.length]!;
  return {
    specversion: '1.0',
    id: `e${i}`,
    source,
    type: 'tollhouse.usage.v1',
    subject: accounts[(i * 31) % accounts.length]!,
    time: new Date(MONTH_START + ((i * 7919) % (30 * 24 * 3600)) * 1000).toISOString(),
    data: {
      pipeline,
      model_id: `model-${i % 4}`,
      unit,
      quantity: String(1_000 + (i % 1_000_000)),
      fee_wei: String(1_234_567_890_123n * BigInt(1 + (i % 1000))),
      app_id: `app_${i % 7}`,
      key_id: `key_${i % 97}`,
      ...(i % 3 === 0 ? { end_user_id: `user-${i % 1000}` } : {}),
      status: i % 50 === 0 ? 502 : 200,
      latency_ms: 100 + (i % 900),
      attributes: { bytes: 1000 + (i % 5000) },
    },
  };
}

/** Usage event `i` as the recorder takes it (what the ingest route makes of `usageEvent`). */
export function recordedEvent(i: number, source: string, accounts: readonly string[]): UsageEvent {
  const e = usageEvent(i, source, accounts);
  return {
    source: e.source,
    eventId: e.id,
    occurredAt: new Date(e.time),
    accountId: e.subject,
    appId: e.data.app_id,
    keyId: e.data.key_id,
    clientId: null,
    endUserId: e.data.end_user_id ?? null,
    pipeline: e.data.pipeline,
    modelId: e.data.model_id,
    unit: e.data.unit,
    quantity: BigInt(e.data.quantity),
    feeWei: BigInt(e.data.fee_wei),
    status: e.data.status,
    latencyMs: e.data.latency_ms,
    attributes: e.data.attributes,
  };
}

/** Runs the generator in a child process and resolves with its result. */
export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
      env: { ...process.env, BENCH_LOAD: JSON.stringify(spec) },
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
}

async function generate(spec: LoadSpec): Promise<LoadResult> {
  const pool = new Pool(spec.origin, { connections: spec.connections, pipelining: 1 });
  const expected = spec.status ?? 200;
  const latencies = new Float64Array(spec.count);
  let next = 0;
  let errors = 0;
  let firstError: string | null = null;
  // Usage batches are built before the clock starts, as the COPY baselines build their CSV:
  // the generator's timed CPU is then sending and reading, not making events.
  const bodies: string[] = [];
  if (spec.usage !== undefined) {
    const u = spec.usage;
    for (let i = 0; i < spec.count; i++) {
      const first = u.offset + i * u.batch;
      const events = Array.from({ length: u.batch }, (_, j) =>
        usageEvent(first + j, u.source, u.accounts),
      );
      bodies.push(JSON.stringify(events));
    }
  }
  const request = (i: number): LoadRequest => {
    if (spec.usage !== undefined) {
      return {
        method: 'POST',
        path: spec.usage.path,
        headers: { authorization: spec.usage.authorization, 'content-type': 'application/json' },
        body: bodies[i]!,
      };
    }
    return spec.requests![i % spec.requests!.length]!;
  };
  const worker = async () => {
    while (next < spec.count) {
      const i = next++;
      const r = request(i);
      const started = performance.now();
      try {
        const response = await pool.request({
          method: r.method,
          path: r.path,
          headers: r.headers ?? {},
          body: r.body ?? null,
        });
        const text = await response.body.text();
        if (response.statusCode !== expected) {
          errors++;
          firstError ??= `${response.statusCode} ${text.slice(0, 300)}`;
        }
      } catch (error) {
        errors++;
        firstError ??= String(error);
      }
      latencies[i] = performance.now() - started;
    }
  };
  const cpu = process.cpuUsage();
  const began = performance.now();
  await Promise.all(Array.from({ length: spec.connections }, worker));
  const seconds = (performance.now() - began) / 1000;
  const used = process.cpuUsage(cpu);
  await pool.close();
  latencies.sort();
  const at = (q: number) => latencies[Math.min(spec.count - 1, Math.floor(q * spec.count))]!;
  return {
    count: spec.count,
    seconds,
    p50: at(0.5),
    p95: at(0.95),
    p99: at(0.99),
    errors,
    firstError,
    cpuMicros: used.user + used.system,
  };
}

if (process.env.BENCH_LOAD !== undefined && process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await generate(JSON.parse(process.env.BENCH_LOAD) as LoadSpec);
  process.stdout.write(JSON.stringify(result));
}
