// The console's keys page over real HTTP with more keys than it shows at once: it follows the
// API's cursors up to its cap, then links on, so no key is dropped silently.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import { CONSOLE_LIST_CAP } from '../../src/console/index.ts';
import { signInHttp, startConsoleApp } from './support.ts';
import type { HttpSession } from './support.ts';
import { accountWithPassword } from '../support/fixtures.ts';

let t: TestApp;
let customer: HttpSession;
const TOTAL = CONSOLE_LIST_CAP + 5;

beforeAll(async () => {
  t = await startConsoleApp();
  const account = await accountWithPassword(t, 'many@example.com');
  customer = await signInHttp(t, 'many@example.com');
  // Straight into the table: issuing 505 keys one by one would only slow the test down.
  await sql`insert into api_keys (id, account_id, kind, name, scopes, key_hash, display_prefix, created_by, created_at)
    select 'key_' || lpad(g::text, 22, '0'), ${account.id}, 'backend', 'k' || g, '["gateway"]',
           md5(g::text), 'th_p' || lpad(g::text, 5, '0'), 'test',
           timestamptz '2026-01-01T00:00:00Z' + (g / 3) * interval '1 microsecond'
    from generate_series(1, ${TOTAL}) g`.execute(t.app.database.db);
});

afterAll(async () => {
  await t?.close();
});

async function page(path: string) {
  const response = await fetch(`${t.url}${path}`, {
    headers: { cookie: `tollhouse_console=${customer.cookie}` },
    redirect: 'manual',
  });
  const text = await response.text();
  const prefixes = [...text.matchAll(/th_p(\d{5})/g)].map((m) => m[1]!);
  const next = /href="(\/console\/keys\?cursor=[^"]+)"/.exec(text)?.[1]?.replaceAll('&amp;', '&');
  return { status: response.status, prefixes, next };
}

describe('console keys page with more keys than it shows', () => {
  it('shows the newest keys up to its cap, links on, and the next page shows the rest', async () => {
    const first = await page('/console/keys');
    expect(first.status).toBe(200);
    expect(new Set(first.prefixes).size).toBe(CONSOLE_LIST_CAP);
    expect(first.prefixes[0]).toBe(String(TOTAL).padStart(5, '0'));
    expect(first.next).toBeDefined();
    const rest = await page(first.next!);
    expect(rest.status).toBe(200);
    expect(rest.next).toBeUndefined();
    const all = new Set([...first.prefixes, ...rest.prefixes]);
    expect(all.size).toBe(TOTAL);
    expect(first.prefixes.length + rest.prefixes.length).toBe(TOTAL);
  });

  it('answers a forged cursor with a 400 page, not a 500', async () => {
    const forged = await page('/console/keys?cursor=bm90LWEtY3Vyc29y');
    expect(forged.status).toBe(400);
  });
});
