// `node bench/cli-in-process.ts [--runs N]`: the CPU one CLI command costs when a test starts
// `tollhouse` as a child process (test/support/process.ts's runCli) against running it in the
// test's own process (test/support/cli.ts's runCliInProcess, src/command-line.ts), measured in
// the same run on the same database. CPU time, not wall time: this machine's load moves wall
// time 1.5–3×, CPU time much less. The child's CPU is read from /proc (Linux) as the time of
// waited-for children. The command is `usage show` (opens the app, one query, JSON out).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runCliInProcess } from '../test/support/cli.ts';
import { ROOT, childEnv } from '../test/support/process.ts';
import { loadAverage } from './report.ts';
import { createBenchDatabase } from './support.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' } } });
const runs = Number(values.runs);

/** CPU milliseconds (user + system) of this process's waited-for children. */
function childrenCpuMs(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  // After "pid (comm) ": state is field 3, so cutime (16) and cstime (17) are at 13 and 14.
  const ticks = Number(fields[13]) + Number(fields[14]);
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

function ownCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

const bench = await createBenchDatabase();
const settings = {
  DATABASE_URL: bench.url,
  TOLLHOUSE_SECRET: 'c'.repeat(64),
  LOG_LEVEL: 'error',
};
const args = ['usage', 'show'];
try {
  const migrated = await runCliInProcess(['migrate'], settings);
  if (migrated.code !== 0) throw new Error(migrated.stderr);
  // Warm-up: the compile cache for children, the module graph for this process.
  spawnSync(process.execPath, [path.join(ROOT, 'src/main.ts'), ...args], {
    cwd: ROOT,
    env: childEnv(settings),
  });
  await runCliInProcess(args, settings);

  const childStart = childrenCpuMs();
  for (let i = 0; i < runs; i++) {
    const child = spawnSync(process.execPath, [path.join(ROOT, 'src/main.ts'), ...args], {
      cwd: ROOT,
      env: childEnv(settings),
    });
    if (child.status !== 0) throw new Error(String(child.stderr));
  }
  const childMs = (childrenCpuMs() - childStart) / runs;

  const ownStart = ownCpuMs();
  for (let i = 0; i < runs; i++) {
    const result = await runCliInProcess(args, settings);
    if (result.code !== 0) throw new Error(result.stderr);
  }
  const inProcessMs = (ownCpuMs() - ownStart) / runs;

  console.log(
    JSON.stringify({
      command: `tollhouse ${args.join(' ')}`,
      runs,
      child_cpu_ms: Math.round(childMs),
      in_process_cpu_ms: Math.round(inProcessMs),
      ratio: Number((childMs / inProcessMs).toFixed(1)),
      load_average: loadAverage(),
      cpus: os.cpus().length,
    }),
  );
} finally {
  await bench.drop();
}
