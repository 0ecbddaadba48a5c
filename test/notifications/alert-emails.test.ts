// Alert e-mail opt-outs: an account's owner chooses which alerts it gets by e-mail
// (GET/PUT /v1/accounts/{id}/alert-emails); the sender skips the muted types and sends the
// rest to a real SMTP server on loopback. Hostile input and foreign callers are refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutboundEvent } from '../../src/platform/events.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { fixedClock } from '../support/clock.ts';
import { adminKey, bearer, call, issueKey } from '../support/credentials.ts';
import { newAccount } from '../support/fixtures.ts';
import { createResponseValidator } from '../support/openapi.ts';
import { startSmtp } from '../identity/smtp.ts';
import type { TestSmtp } from '../identity/smtp.ts';

let t: TestApp;
let smtp: TestSmtp;
let operator: string;
const validate = createResponseValidator();

beforeAll(async () => {
  smtp = await startSmtp();
  t = await startTestApp({
    clock: fixedClock('2027-05-10T12:00:00Z'),
    env: { SMTP_URL: smtp.url, MAIL_FROM: 'Tollhouse <alerts@example.com>' },
  });
  operator = (await adminKey(t)).secret;
});
afterAll(async () => {
  await t?.close();
  await smtp?.close();
});

let counter = 0;
async function customer() {
  const email = `alerts${++counter}-${Date.now()}@example.com`;
  const accountId = await newAccount(t, email);
  await t.app.database.db
    .updateTable('accounts')
    .set({ email_verified: true })
    .where('id', '=', accountId)
    .execute();
  const key = await issueKey(t, accountId, { scopes: ['gateway'] });
  return { accountId, email, headers: bearer(key.secret) };
}

async function publish(...events: OutboundEvent[]) {
  await t.app.database.db
    .transaction()
    .execute((trx) => t.app.notifications.events.publish(trx, events));
}

describe('alert e-mail opt-outs', () => {
  it('sends every alert by default and skips the types the owner muted', async () => {
    const c = await customer();
    const path = `/v1/accounts/${c.accountId}/alert-emails`;
    const initial = await call(t, 'GET', path, { headers: c.headers });
    expect(initial.status).toBe(200);
    validate('get', '/v1/accounts/{id}/alert-emails', initial.status, initial.body);
    expect(initial.body.muted_event_types).toEqual([]);
    const saved = await call(t, 'PUT', path, {
      headers: c.headers,
      body: { muted_event_types: ['balance.low', 'balance.low', 'statement.closed'] },
    });
    expect(saved.status).toBe(200);
    validate('put', '/v1/accounts/{id}/alert-emails', saved.status, saved.body);
    expect(saved.body.muted_event_types).toEqual(['balance.low', 'statement.closed']);

    const data = { balance_usd_micros: '1' };
    await publish(
      { type: 'balance.low', accountId: c.accountId, key: `low:${c.accountId}`, data },
      { type: 'balance.depleted', accountId: c.accountId, key: `dep:${c.accountId}`, data },
    );
    await t.app.notifications.deliverDue();
    await t.app.notifications.drainMail();
    await smtp.next(c.email, /prepaid balance is used up/);
    expect(smtp.waiting(c.email).map((m) => m.subject)).toEqual([]);

    // Unmuted again: the next crossing is mailed.
    await call(t, 'PUT', path, { headers: c.headers, body: { muted_event_types: [] } });
    await publish({
      type: 'balance.low',
      accountId: c.accountId,
      key: `low2:${c.accountId}`,
      data,
    });
    await t.app.notifications.deliverDue();
    await smtp.next(c.email, /prepaid balance is low/);
    const audit = await t.app.database.db
      .selectFrom('audit_log')
      .select('action')
      .where('subject', '=', c.accountId)
      .where('action', '=', 'notifications.alert_emails')
      .execute();
    expect(audit).toHaveLength(2);
  });

  it('refuses hostile input, foreign callers and unknown accounts, changing nothing', async () => {
    const c = await customer();
    const other = await customer();
    const path = `/v1/accounts/${c.accountId}/alert-emails`;
    await call(t, 'PUT', path, {
      headers: c.headers,
      body: { muted_event_types: ['balance.low'] },
    });
    for (const body of [
      { muted_event_types: ['balance.nope'] },
      { muted_event_types: 'balance.low' },
      { muted_event_types: [1] },
      { muted_event_types: Array(50).fill('balance.low') },
      { muted_event_types: [], extra: true },
      {},
      null,
    ]) {
      const r = await call(t, 'PUT', path, { headers: c.headers, body });
      expect({ body, status: r.status }).toEqual({ body, status: 400 });
      // A body that is not an object is refused by the body parser (BadRequest), the rest by zod.
      expect(r.body.error).toMatch(/^(InvalidRequest|BadRequest)$/);
    }
    expect(
      (await call(t, 'PUT', path, { headers: other.headers, body: { muted_event_types: [] } }))
        .status,
    ).toBe(403);
    expect((await call(t, 'GET', path, { headers: other.headers })).status).toBe(403);
    expect((await call(t, 'GET', path)).status).toBe(401);
    const unknown = await call(t, 'PUT', '/v1/accounts/acct_nosuchaccount/alert-emails', {
      headers: bearer(operator),
      body: { muted_event_types: [] },
    });
    expect(unknown.status).toBe(404);
    const still = await call(t, 'GET', path, { headers: c.headers });
    expect(still.body.muted_event_types).toEqual(['balance.low']);
  });
});
