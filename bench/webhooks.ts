// Outbound webhook delivery rate: events published to the outbox, fanned out and delivered
// (signed, one in flight per endpoint, every attempt recorded) to a local receiver, against a
// baseline measured in the same run — plain undici POSTs of the same bodies to the same
// receiver with the same parallelism (one request at a time per endpoint), nothing recorded.
//
//   node bench/webhooks.ts [--endpoints 10] [--events 300]
//
// `--events` per endpoint (each endpoint is its own account). Uses BENCH_DATABASE_URL (default
// the local PostgreSQL), a throwaway database.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { createApp } from '../src/app.ts';
import { parseConfig } from '../src/config.ts';
import { payloadOf } from '../src/notifications/index.ts';
import type { OutboundEvent } from '../src/platform/events.ts';
import { createBenchDatabase } from './support.ts';

const { values } = parseArgs({
  options: {
    endpoints: { type: 'string', default: '10' },
    events: { type: 'string', default: '300' },
  },
});
const ENDPOINTS = Number(values.endpoints);
const EVENTS = Number(values.events);
const TOTAL = ENDPOINTS * EVENTS;

let received = 0;
let onReceived: (() => void) | null = null;
const receiver = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    received++;
    res.writeHead(204).end();
    if (received >= TOTAL) onReceived?.();
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
const allReceived = () =>
  new Promise<void>((resolve) => {
    if (received >= TOTAL) resolve();
    else onReceived = resolve;
  });

const bench = await createBenchDatabase();
const app = await createApp({
  config: parseConfig({
    TOLLHOUSE_SECRET: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'silent',
    HOST: '127.0.0.1',
    DATABASE_URL: bench.url,
    WEBHOOK_ALLOW_PRIVATE_ADDRESSES: 'true',
  }),
  log: bench.log,
  database: bench.database,
  // No background sender: the measured window starts when we call it.
  start: false,
});

try {
  const accounts: string[] = [];
  for (let i = 0; i < ENDPOINTS; i++) {
    const account = await app.identity.accounts.create({
      email: `bench-${i}@example.com`,
      password: null,
    });
    accounts.push(account.id);
    await app.notifications.service.create(
      { actor: 'bench', accountId: account.id, operator: false, requestId: null },
      { url },
    );
  }
  const events: OutboundEvent[] = [];
  for (let n = 0; n < EVENTS; n++) {
    for (const accountId of accounts) {
      events.push({
        type: 'balance.low',
        accountId,
        key: `bench:${accountId}:${n}`,
        data: { balance_wei: String(1_000_000_000n * BigInt(n)), threshold_wei: '1000' },
      });
    }
  }
  for (let i = 0; i < events.length; i += 1000) {
    await app.database.db
      .transaction()
      .execute((trx) => app.notifications.events.publish(trx, events.slice(i, i + 1000)));
  }

  // Outbox delivery.
  const started = performance.now();
  const done = allReceived();
  while (received < TOTAL) await app.notifications.deliverDue();
  await done;
  const outboxSeconds = (performance.now() - started) / 1000;
  const succeeded = await app.database.db
    .selectFrom('webhook_deliveries')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('status', '=', 'succeeded')
    .executeTakeFirstOrThrow();

  // Baseline: the same bodies, plain POSTs, one at a time per endpoint.
  received = 0;
  const rows = await app.database.db
    .selectFrom('outbound_events')
    .select(['id', 'type', 'account_id', 'data', 'occurred_at'])
    .orderBy('seq')
    .execute();
  const bodies = new Map<string, string[]>();
  for (const r of rows) {
    const list = bodies.get(r.account_id!) ?? [];
    list.push(
      payloadOf({
        id: r.id,
        type: r.type,
        accountId: r.account_id,
        data: r.data,
        occurredAt: r.occurred_at,
      }),
    );
    bodies.set(r.account_id!, list);
  }
  const agent = new Agent({ connections: 16 });
  const baselineStart = performance.now();
  await Promise.all(
    [...bodies.values()].map(async (list) => {
      for (const body of list) {
        const response = await request(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          dispatcher: agent,
        });
        await response.body.dump();
      }
    }),
  );
  const baselineSeconds = (performance.now() - baselineStart) / 1000;
  await agent.close();

  const outboxRate = TOTAL / outboxSeconds;
  const baselineRate = TOTAL / baselineSeconds;
  console.log(
    JSON.stringify(
      {
        endpoints: ENDPOINTS,
        events: TOTAL,
        delivered_succeeded: Number(succeeded.n),
        outbox_deliveries_per_second: Math.round(outboxRate),
        baseline_posts_per_second: Math.round(baselineRate),
        ratio: Number((outboxRate / baselineRate).toFixed(3)),
      },
      null,
      2,
    ),
  );
} finally {
  await app.close();
  await bench.drop();
  receiver.close();
}
