// One line per target, the same for every benchmark: `target | ratio | goal | met`, with the
// machine (CPU model from /proc/cpuinfo) and the load average when the bench started and ended.
// Absolute figures do not carry between hosts (issue #21); a ratio against a baseline measured
// in the same run does, so every target is a ratio.
//
// With BENCH_RESULTS=file (set by bench/run.ts), each target is also appended to that file as
// one JSON line, so `npm run bench` can print one table for all benchmarks.
import { appendFileSync, readFileSync } from 'node:fs';
import os from 'node:os';

export interface TargetLine {
  bench: string;
  target: string;
  ratio: number;
  /** `>=` or `<=` against `limit`; null for a figure reported beside the targets, no goal. */
  goal: { op: '>=' | '<='; limit: number } | null;
  /** The absolute figures behind the ratio (this machine only). */
  detail: string;
}

/** "AMD EPYC, 2 CPUs": the model as /proc/cpuinfo names it (os.cpus() elsewhere). */
export function cpuModel(): string {
  let model = os.cpus()[0]?.model ?? 'unknown CPU';
  try {
    const line = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (line) model = line[1]!.trim();
  } catch {
    // not Linux
  }
  return `${model}, ${os.availableParallelism()} CPUs`;
}

export function loadAverage(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

export function met(line: Pick<TargetLine, 'ratio' | 'goal'>): boolean | null {
  if (line.goal === null || !Number.isFinite(line.ratio)) return null;
  return line.goal.op === '>=' ? line.ratio >= line.goal.limit : line.ratio <= line.goal.limit;
}

export function formatGoal(goal: TargetLine['goal']): string {
  if (goal === null) return '—';
  return `${goal.op === '>=' ? '≥' : '≤'} ${goal.limit}×`;
}

export function formatLine(line: TargetLine): string {
  const ok = met(line);
  return [
    line.bench.padEnd(8),
    line.target.padEnd(64),
    `${line.ratio.toFixed(2)}×`.padStart(8),
    formatGoal(line.goal).padEnd(8),
    (ok === null ? '—' : ok ? 'met' : 'not met').padEnd(7),
    line.detail,
  ].join(' | ');
}

export const HEADER = `${'bench'.padEnd(8)} | ${'target'.padEnd(64)} | ${'ratio'.padStart(8)} | ${'goal'.padEnd(8)} | ${'met'.padEnd(7)} | absolute figures (this machine)`;

/**
 * A benchmark's report: prints the machine and load now, `target()` prints one line each (and
 * appends it to BENCH_RESULTS), `finish()` prints the load at the end.
 */
export function startReport(bench: string) {
  const loadStart = loadAverage();
  process.stdout.write(
    `${bench}: ${cpuModel()}, node ${process.version}, load average at start ${loadStart}\n`,
  );
  const lines: TargetLine[] = [];
  return {
    target(line: Omit<TargetLine, 'bench'>): void {
      const full = { bench, ...line };
      lines.push(full);
      process.stdout.write(`${formatLine(full)}\n`);
      const file = process.env.BENCH_RESULTS;
      if (file) appendFileSync(file, `${JSON.stringify(full)}\n`);
    },
    finish(): void {
      process.stdout.write(
        `${bench}: load average at start ${loadStart}, at end ${loadAverage()}\n${HEADER}\n${lines.map(formatLine).join('\n')}\n`,
      );
    },
  };
}
