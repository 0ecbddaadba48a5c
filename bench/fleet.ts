// The fleet soak, long form (issue #20 item 3; the short form runs in CI as
// test/fleet/soak.test.ts): three `tollhouse serve` replicas over one PostgreSQL, anvil with
// the real TicketBroker, the fake gateway and the fake Stripe, a mixed load for --seconds,
// and a fault schedule — SIGKILL and restart of a replica, a PostgreSQL restart, the RPC cut
// for 30 s, Stripe answering 500 while a month closes and syncs. Prints the figures as a
// table (BENCHMARKS.md, "Fleet soak") and exits 1 when a check fails.
//
//   node bench/fleet.ts [--seconds 180] [--postgres restart|terminate] [--rpc-outage 30]
//                       [--stripe-outage 15] [--concurrency 2]
//
// --postgres restart (the default) restarts the local PostgreSQL server with pg_ctlcluster:
// run it where nothing else uses that server. `terminate` only drops the fleet's own
// connections (what the CI test does). BENCH_DATABASE_URL names the server (default local).
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { formatReport, runSoak } from '../test/fleet/fleet.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '180' },
    postgres: { type: 'string', default: 'restart' },
    'rpc-outage': { type: 'string', default: '30' },
    'stripe-outage': { type: 'string', default: '15' },
    concurrency: { type: 'string', default: '2' },
  },
  strict: true,
});
if (values.postgres !== 'restart' && values.postgres !== 'terminate') {
  throw new Error(`--postgres ${values.postgres}: expected restart or terminate`);
}

// A throwaway database (the replicas migrate it). Not bench/support.ts's createBenchDatabase:
// it keeps an admin connection open, which the PostgreSQL restart would break mid-run.
const server = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const name = `tollhouse_fleet_${randomBytes(4).toString('hex')}`;
const admin = async (statement: string) => {
  const client = new pg.Client({ connectionString: server });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
};
await admin(`create database ${name}`);
const url = new URL(server);
url.pathname = `/${name}`;
const loadBefore = os.loadavg();
try {
  const report = await runSoak({
    seconds: Number(values.seconds),
    databaseUrl: url.toString(),
    postgresFault: values.postgres,
    rpcOutageSeconds: Number(values['rpc-outage']),
    stripeOutageSeconds: Number(values['stripe-outage']),
    concurrency: Number(values.concurrency),
    progress: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(
    `${new Date().toISOString()}  node ${process.version}  load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}\n` +
      `${formatReport(report)}\n`,
  );
  const failed =
    report.usage.lost > 0 ||
    report.usage.storedTwice > 0 ||
    report.statements.mismatched > 0 ||
    report.tickets.doubleSigned > 0 ||
    report.funding.doubleFunded > 0 ||
    report.funding.unmatched > 0 ||
    report.undocumented.length > 0 ||
    report.unexcused.length > 0 ||
    report.crashes.length > 0 ||
    report.faults.some((f) => Object.values(f.recovery).some((v) => v === null));
  process.exitCode = failed ? 1 : 0;
} finally {
  await admin(`drop database if exists ${name} with (force)`).catch(() => undefined);
}
// Child processes and sockets are gone; anything left (a keep-alive agent) must not hold the exit.
process.exit();
