// Idempotency over HTTP under concurrency: batches that repeat events within themselves, repeat
// earlier batches, and overlap each other while both are in flight store each event once, say
// "accepted" for it exactly once, and leave rollups equal to a recount of the raw events.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { bearer, call, issueKey } from '../support/credentials.ts';
import { newAccount } from '../support/fixtures.ts';

let t: TestApp;
let writer: string;
let accounts: string[];

beforeAll(async () => {
  t = await startTestApp();
  const operator = await newAccount(t);
  writer = (await issueKey(t, operator, { scopes: ['admin'] })).secret;
  accounts = [await newAccount(t), await newAccount(t)];
});
afterAll(async () => {
  await t.close();
});

/** Event `i` always has the same content: a retry sends the same event again. */
function event(i: number) {
  return {
    specversion: '1.0',
    id: `dup-${i}`,
    source: 'urn:collector:dup',
    type: 'tollhouse.usage.v1',
    subject: accounts[i % 2]!,
    // Two hours and two months, so rollups and partitions both see several keys.
    time: new Date(
      Date.UTC(2026, 9 + (i % 2), 31 - (i % 2) * 30, 22 + (i % 2), i % 60),
    ).toISOString(),
    data: {
      pipeline: i % 3 === 0 ? 'llm' : 'text-to-image',
      model_id: `m${i % 4}`,
      unit: i % 3 === 0 ? 'tokens' : 'pixels',
      quantity: String(1000 + i),
      fee_wei: String(10n ** 20n + BigInt(i)),
      ...(i % 5 === 0 ? { end_user_id: `user-${i % 2}` } : {}),
      status: i % 7 === 0 ? 502 : 200,
    },
  };
}

async function ingest(ids: number[]) {
  const response = await call(t, 'POST', '/v1/usage/events', {
    headers: bearer(writer, { 'content-type': 'application/json' }),
    raw: JSON.stringify(ids.map(event)),
  });
  expect(response.status).toBe(200);
  return response.body as {
    accepted: number;
    duplicates: number;
    results: Array<{ id: string; status: string }>;
  };
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);

describe('ingest idempotency', () => {
  it('stores each event once across in-batch, earlier and concurrent duplicates; rollups equal a recount', async () => {
    const acceptedCount = new Map<string, number>();
    const tally = (body: Awaited<ReturnType<typeof ingest>>) => {
      for (const r of body.results) {
        if (r.status === 'accepted') acceptedCount.set(r.id, (acceptedCount.get(r.id) ?? 0) + 1);
      }
    };
    // Earlier batch: 0..39.
    tally(await ingest(range(0, 40)));
    for (let round = 0; round < 4; round++) {
      const fresh = 40 + round * 60;
      // X: new events, some twice or three times in the same batch, some of the earlier batch.
      const x = [...range(fresh, fresh + 40), fresh, fresh + 1, fresh + 1, ...range(0, 10)];
      // Y: overlaps X's new events, the earlier batch, its own new events and repeats.
      const y = [...range(fresh + 20, fresh + 60), ...range(5, 15), fresh + 50, fresh + 59];
      const [bx, by] = await Promise.all([ingest(x), ingest(y)]);
      expect(bx.accepted + bx.duplicates).toBe(x.length);
      expect(by.accepted + by.duplicates).toBe(y.length);
      tally(bx);
      tally(by);
    }
    const distinct = 40 + 4 * 60;
    // Every distinct event acknowledged as accepted exactly once, in whichever request won.
    expect(acceptedCount.size).toBe(distinct);
    expect([...acceptedCount.values()].every((n) => n === 1)).toBe(true);

    const db = t.app.database.db;
    const stored = await sql<{ event_id: string; copies: bigint }>`
      select event_id, count(*) as copies from usage_events where source = 'urn:collector:dup'
      group by event_id`.execute(db);
    expect(stored.rows.length).toBe(distinct);
    expect(stored.rows.every((r) => BigInt(r.copies) === 1n)).toBe(true);

    const recount = await sql<Record<string, string>>`
      select account_id, coalesce(app_id, '') as app_id, coalesce(end_user_id, '') as end_user_id,
             pipeline, coalesce(model_id, '') as model_id, unit,
             to_char(date_trunc('hour', occurred_at at time zone 'UTC'), 'YYYY-MM-DD"T"HH24') as hour,
             count(*)::text as events, (count(*) filter (where status >= 400))::text as failed,
             sum(quantity)::text as quantity, sum(fee_wei)::text as fee
      from usage_events group by 1, 2, 3, 4, 5, 6, 7`.execute(db);
    const rollups = await sql<Record<string, string>>`
      select account_id, app_id, end_user_id, pipeline, model_id, unit,
             to_char(hour at time zone 'UTC', 'YYYY-MM-DD"T"HH24') as hour,
             events::text as events, failed_events::text as failed, quantity::text as quantity,
             fee_wei::text as fee
      from usage_rollups`.execute(db);
    const key = (r: Record<string, string>) =>
      [r.account_id, r.app_id, r.end_user_id, r.pipeline, r.model_id, r.unit, r.hour].join('|') +
      ` ${r.events} ${r.failed} ${r.quantity} ${r.fee}`;
    expect(rollups.rows.map(key).sort()).toEqual(recount.rows.map(key).sort());
    expect(recount.rows.length).toBeGreaterThan(10);
  });
});
