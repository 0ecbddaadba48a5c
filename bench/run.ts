// `npm run bench [-- --long] [-- name …]`: every benchmark (or the named ones), one after the
// other in child processes, then one table of all their targets with the CPU model and the
// load average. Short mode takes a few minutes on 2 cores; --long runs the sizes the targets
// are stated for (1 M events to close, 10 M stored for the usage query, …). CI does not run it.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { TargetLine } from './report.ts';
import { cpuModel, formatGoal, loadAverage, met } from './report.ts';

const BENCHES: Record<
  string,
  { script: string; short: string[]; long: string[]; env?: Record<string, [string, string]> }
> = {
  keys: {
    script: 'keys-verify.ts',
    short: ['--iterations', '300000', '--requests', '5000', '--keys', '300'],
    long: ['--iterations', '1000000', '--requests', '20000', '--rounds', '3'],
  },
  metering: {
    script: 'metering-ingest.ts',
    short: ['--events', '40000', '--queries', '200'],
    long: ['--events', '200000', '--copy-stored', '10000000', '--queries', '400'],
  },
  billing: {
    script: 'billing-close.ts',
    short: ['--events', '200000', '--checks', '1000000'],
    long: ['--events', '1000000'],
  },
  gateway: {
    script: 'gateway-proxy.ts',
    short: ['--requests', '4000', '--rounds', '2'],
    long: ['--requests', '20000', '--rounds', '3'],
  },
  signer: {
    script: 'signer-payments.ts',
    short: [],
    long: [],
    // [short, long]
    env: { BENCH_PAYMENTS: ['2000', '6000'], BENCH_DB: ['', 'postgres'] },
  },
  limits: {
    script: 'limits.ts',
    short: ['--requests', '2000000'],
    long: ['--requests', '10000000', '--seconds', '600'],
  },
  identity: {
    script: 'identity-tokens.ts',
    short: ['--seconds', '4', '--rounds', '2'],
    long: ['--seconds', '10', '--rounds', '4'],
  },
};

const { values, positionals } = parseArgs({
  options: { long: { type: 'boolean', default: false } },
  allowPositionals: true,
});
const unknown = positionals.filter((name) => !(name in BENCHES));
if (unknown.length > 0) {
  process.stderr.write(
    `unknown bench ${unknown.join(', ')}; choose from ${Object.keys(BENCHES).join(', ')}\n`,
  );
  process.exit(2);
}
const chosen = positionals.length > 0 ? positionals : Object.keys(BENCHES);
const dir = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-bench-'));
const results = path.join(dir, 'results.jsonl');
const loadStart = loadAverage();
const started = new Date();
const failed: string[] = [];
for (const name of chosen) {
  const bench = BENCHES[name]!;
  const env: NodeJS.ProcessEnv = { ...process.env, BENCH_RESULTS: results };
  for (const [key, [short, long]] of Object.entries(bench.env ?? {})) {
    const value = values.long ? long : short;
    if (value !== '') env[key] = value;
  }
  const args = [
    path.join(import.meta.dirname, bench.script),
    ...(values.long ? bench.long : bench.short),
  ];
  process.stdout.write(`\n=== ${name}: node ${args.slice(1).join(' ')}\n`);
  const t0 = performance.now();
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, args, { env, stdio: 'inherit' });
    child.on('exit', (c) => resolve(c));
  });
  process.stdout.write(`=== ${name}: ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  if (code !== 0) failed.push(`${name} (exit ${code})`);
}

let lines: TargetLine[] = [];
try {
  lines = readFileSync(results, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as TargetLine);
} catch {
  // no bench reported anything
}
rmSync(dir, { recursive: true, force: true });
const cell = (s: string) => s.replaceAll('|', '\\|');
process.stdout.write(
  [
    '',
    `${values.long ? 'long' : 'short'} run, ${started.toISOString().slice(0, 16)}Z–${new Date().toISOString().slice(11, 16)}Z; ${cpuModel()}; node ${process.version}; load average at start ${loadStart}, at end ${loadAverage()}`,
    '',
    '| bench | target | ratio | goal | met | absolute figures (this machine) |',
    '| --- | --- | ---: | --- | --- | --- |',
    ...lines.map((l) => {
      const ok = met(l);
      return `| ${l.bench} | ${cell(l.target)} | ${l.ratio.toFixed(2)}× | ${formatGoal(l.goal)} | ${ok === null ? '—' : ok ? '✅ met' : '❌ not met'} | ${cell(l.detail)} |`;
    }),
    ...(failed.length > 0 ? ['', `failed: ${failed.join(', ')}`] : []),
    '',
  ].join('\n'),
);
process.exitCode = failed.length > 0 ? 1 : 0;
