// A throwaway database for a benchmark: created in BENCH_DATABASE_URL's server (default the
// local PostgreSQL), opened with the app's own driver, dropped by `drop()`.
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import pg from 'pg';
import { createDatabase } from '../src/database.ts';
import type { DatabaseHandle } from '../src/database.ts';
import { createLogger } from '../src/platform/log.ts';
import type { Logger } from '../src/platform/log.ts';

export interface BenchDatabase {
  database: DatabaseHandle;
  /** postgres:// URL of the benchmark's own database. */
  url: string;
  /** That database's name. */
  name: string;
  log: Logger;
  /** Closes the handle and drops the database. */
  drop(): Promise<void>;
}

export async function createBenchDatabase(): Promise<BenchDatabase> {
  const server = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const name = `tollhouse_bench_${randomBytes(4).toString('hex')}`;
  // Short-lived admin connections: a long run (a 10 M-event load) outlives a connection that
  // other work on a shared server may terminate.
  const adminQuery = async (text: string) => {
    const admin = new pg.Client({ connectionString: server });
    admin.on('error', () => {});
    await admin.connect();
    try {
      await admin.query(text);
    } finally {
      await admin.end();
    }
  };
  await adminQuery(`create database ${name}`);
  const url = new URL(server);
  url.pathname = `/${name}`;
  const log = createLogger({ level: 'warn', destination: process.stderr });
  const database = await createDatabase({
    config: { url: url.toString(), poolMax: 10, dataDir: '/tmp' },
    log,
  });
  return {
    database,
    url: url.toString(),
    name,
    log,
    async drop() {
      await database.close();
      await adminQuery(`drop database if exists ${name} with (force)`);
    },
  };
}

/**
 * BENCH_CPU_PROFILE=file.cpuprofile: a V8 CPU profile of this thread for the measured window
 * only (set-up, baselines and warm-up left out), for `chrome://inspect` or any .cpuprofile
 * viewer. Returns the function that stops and writes it; a no-op without the setting.
 */
export async function profileWindow(): Promise<() => Promise<void>> {
  const file = process.env.BENCH_CPU_PROFILE;
  if (file === undefined || file === '') return async () => {};
  const { Session } = await import('node:inspector/promises');
  const { writeFile } = await import('node:fs/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    await writeFile(file, JSON.stringify(profile));
    session.disconnect();
    process.stderr.write(`CPU profile of the measured window written to ${file}\n`);
  };
}

/**
 * CPU seconds (user + system) of a process so far: how much of the shared cores a role costs
 * per request. The total is the run time of all its threads from /proc/<pid>/task/<tid>/schedstat
 * (ns); the user share comes from /proc/<pid>/stat, counted in clock ticks of 1/100 s — too
 * coarse for a total per slice of a few hundred ms. `system` is the rest.
 */
export function cpuSeconds(pid: number): { user: number; system: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const user = Number(fields[11]) / 100;
    let total = (Number(fields[11]) + Number(fields[12])) / 100;
    try {
      let ns = 0;
      for (const task of readdirSync(`/proc/${pid}/task`)) {
        ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
      }
      total = ns / 1e9;
    } catch {
      // no schedstat (kernel without CONFIG_SCHED_INFO): ticks only
    }
    return { user, system: total - user };
  } catch {
    return { user: 0, system: 0 }; // not Linux, or the process is gone
  }
}

/**
 * CPU of the PostgreSQL backends serving database `name`: call once before the measured
 * window and use the returned function after it, for the seconds they used in between
 * (backends that connected meanwhile count from their start).
 */
export async function postgresCpu(name: string): Promise<() => Promise<number>> {
  const server = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const snapshot = async () => {
    const client = new pg.Client({ connectionString: server });
    await client.connect();
    try {
      const { rows } = await client.query<{ pid: number }>(
        'select pid from pg_stat_activity where datname = $1',
        [name],
      );
      return new Map(
        rows.map(({ pid }) => {
          const used = cpuSeconds(pid);
          return [pid, used.user + used.system];
        }),
      );
    } finally {
      await client.end();
    }
  };
  const before = await snapshot();
  return async () => {
    let total = 0;
    for (const [pid, seconds] of await snapshot()) total += seconds - (before.get(pid) ?? 0);
    return total;
  };
}
