// GET /v1/keys pages with the conventions of GET /v1/accounts (limit, opaque cursor,
// next_cursor), over real HTTP: a walk that returns every key exactly once even when keys share
// a millisecond or a whole timestamp, and hostile limits and cursors answered with 400.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keysCommands } from '../../src/keys/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { bearer, call, issueKey, newAccount } from './support.ts';

const validate = createResponseValidator();
let t: TestApp;
let admin: string;
let account: string;
let own: string;
let other: string;
let otherKey: string;
/** Every key of `account`, newest first as the API orders them (created_at desc, id desc). */
let expected: string[];

async function list(query: string, secret = own) {
  const response = await call(t, 'GET', `/v1/keys${query}`, { headers: bearer(secret) });
  expect(validate('GET', '/v1/keys', response.status, response.body)).toBeNull();
  return response;
}

beforeAll(async () => {
  t = await startTestApp();
  const ops = await newAccount(t);
  admin = (await issueKey(t, ops, { scopes: ['admin'] })).secret;
  account = await newAccount(t);
  own = (await issueKey(t, account, { name: 'caller' })).secret;
  for (let i = 0; i < 24; i++) await issueKey(t, account, { name: `k${i}` });
  const ids = (
    await t.app.database.db
      .selectFrom('api_keys')
      .select('id')
      .where('account_id', '=', account)
      .orderBy('id')
      .execute()
  ).map((r) => r.id);
  // Ten keys in one millisecond (different microseconds), ten at the very same microsecond:
  // a cursor that kept only JS milliseconds would skip or repeat some of these.
  const db = t.app.database.db;
  for (const [i, id] of ids.slice(0, 10).entries()) {
    await sql`update api_keys set created_at = ${`2026-01-01T00:00:00.123${String(100 + i * 7).padStart(3, '0')}Z`}::timestamptz where id = ${id}`.execute(
      db,
    );
  }
  await sql`update api_keys set created_at = '2026-01-01T00:00:00.500000Z' where id in (${sql.join(ids.slice(10, 20))})`.execute(
    db,
  );
  expected = (
    await sql<{
      id: string;
    }>`select id from api_keys where account_id = ${account} order by created_at desc, id desc`.execute(
      db,
    )
  ).rows.map((r) => r.id);
  other = await newAccount(t);
  otherKey = (await issueKey(t, other)).secret;
  for (let i = 0; i < 3; i++) await issueKey(t, other);
});
afterAll(async () => {
  await t.close();
});

describe('GET /v1/keys paging', () => {
  it('without limit or cursor returns the first page of 50 in the same shape, and null on the last', async () => {
    const first = await list('');
    expect(first.status).toBe(200);
    expect(first.body.keys.map((k: { id: string }) => k.id)).toEqual(expected);
    expect(first.body.next_cursor).toBeNull();
  });

  it('defaults to pages of 50, the most of /v1/accounts', async () => {
    const many = await newAccount(t);
    for (let i = 0; i < 51; i++) await issueKey(t, many);
    const first = await list(`?account_id=${many}`, admin);
    expect(first.body.keys).toHaveLength(50);
    const rest = await list(`?account_id=${many}&cursor=${first.body.next_cursor}`, admin);
    expect(rest.body.keys).toHaveLength(1);
    expect(rest.body.next_cursor).toBeNull();
  });

  it('prints every key from `tollhouse keys list`, following cursors past a page of 200', async () => {
    const many = await newAccount(t);
    await sql`insert into api_keys (id, account_id, kind, name, scopes, key_hash, display_prefix, created_by)
      select 'key_' || lpad(g::text, 22, '0'), ${many}, 'backend', 'k', '["gateway"]',
             md5(${many} || g), 'th_x', 'test'
      from generate_series(1, 450) g`.execute(t.app.database.db);
    let stdout = '';
    const code = await keysCommands.keys!.run(['list', '--account', many], {
      io: {
        out: (text) => (stdout += text),
        err: () => {},
        stdout: process.stdout,
        stdin: process.stdin,
      },
      open: async () => ({ keyService: t.app.keys.service, accounts: t.app.identity.accounts }),
    });
    expect(code).toBe(0);
    const printed = JSON.parse(stdout) as { keys: Array<{ id: string }>; next_cursor: null };
    expect(new Set(printed.keys.map((k) => k.id)).size).toBe(450);
    expect(printed.next_cursor).toBeNull();
  });

  it('walks every page once, each key exactly once, newest first, through shared timestamps', async () => {
    for (const limit of [1, 3, 7, 24]) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: string =
          `?limit=${limit}` + (cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`);
        const page = await list(query);
        expect(page.status).toBe(200);
        expect(page.body.keys.length).toBeLessThanOrEqual(limit);
        seen.push(...page.body.keys.map((k: { id: string }) => k.id));
        cursor = page.body.next_cursor;
        pages++;
      } while (cursor !== null && pages < 100);
      expect(seen).toEqual(expected);
      expect(new Set(seen).size).toBe(25);
      expect(pages).toBe(Math.ceil(25 / limit));
    }
  });

  it('lets an admin page another account with account_id, and the owner continue that list', async () => {
    const first = await list(`?account_id=${account}&limit=10`, admin);
    expect(first.body.keys.map((k: { id: string }) => k.id)).toEqual(expected.slice(0, 10));
    // The same list (this account's keys), so the owner may continue it.
    const next = await list(`?limit=10&cursor=${first.body.next_cursor}`);
    expect(next.body.keys.map((k: { id: string }) => k.id)).toEqual(expected.slice(10, 20));
  });

  it('answers hostile limits with 400', async () => {
    for (const limit of ['0', '-1', '201', '1000000', 'abc', '1.5', '', '1e400', '0x10']) {
      const response = await list(`?limit=${encodeURIComponent(limit)}`);
      expect(response.status, `limit=${limit}`).toBe(400);
      expect(response.body.error).toBe('InvalidRequest');
    }
    expect((await list('?limit=200')).status).toBe(200);
  });

  it('refuses cursors it did not issue for this list with 400', async () => {
    const cursorOf = async (query: string, secret: string) =>
      (await list(`?limit=1${query}`, secret)).body.next_cursor as string;
    const fromOther = await cursorOf('', otherKey);
    const fromAdminOnOther = await cursorOf(`&account_id=${other}`, admin);
    const mine = await cursorOf('', own);
    const decoded = Buffer.from(mine, 'base64url').toString();
    const forge = (text: string) => Buffer.from(text).toString('base64url');
    const [, , at, id] = decoded.split('|');
    const hostile = [
      fromOther, // another account's list
      fromAdminOnOther,
      forge('someone@example.com'), // the shape of a /v1/accounts cursor
      forge(`apps|${account}|${at}|${id}`), // another list's
      forge(`keys|${account}|2026-02-30T00:00:00.000000Z|${id}`), // no such day
      forge(`keys|${account}|${at}|app_0000000000000000000000`),
      forge(`keys|${account}|${at}|${id}|x`),
      forge(`keys|${account}|${at}' or 1=1 --|${id}`),
      `${mine}=`,
      `${mine}!`,
      'x'.repeat(701),
      '%00',
    ];
    for (const cursor of hostile) {
      const response = await list(`?cursor=${encodeURIComponent(cursor)}`);
      expect(response.status, cursor).toBe(400);
      expect(response.body.error).toBe('InvalidRequest');
    }
    // Another account's cursor used by the admin on this account's list is refused too.
    const crossed = await list(`?account_id=${account}&cursor=${fromOther}`, admin);
    expect(crossed.status).toBe(400);
    expect(crossed.body.message).toBe('query.cursor: not a cursor returned by this API');
  });
});
