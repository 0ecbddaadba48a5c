// Issue #18's extras: account holders send invitations (SIGNUP_OWNER_INVITATIONS with the invite
// policy) through the real SMTP server, within a daily allowance counted in the database, and
// only by e-mail; the sweep of used and expired account tokens on a moved clock; the operator's
// view of open invitations (list, revoke) in process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identityCommands } from '../../src/identity/index.ts';
import { adminKey, bearer, call, issueKey } from '../support/credentials.ts';
import { PASSWORD, accountWithPassword } from '../support/fixtures.ts';
import { startIdentityApp } from './support.ts';
import type { IdentityTestApp } from './support.ts';
import { linkIn, startSmtp } from './smtp.ts';
import type { TestSmtp } from './smtp.ts';

const DAY_MS = 86_400_000;
let smtp: TestSmtp;
let t: IdentityTestApp;
let counter = 0;
const unique = (name: string) => `${name}-${Date.now()}-${++counter}@example.com`;

beforeAll(async () => {
  smtp = await startSmtp();
  t = await startIdentityApp({
    SIGNUP_POLICY: 'invite',
    SIGNUP_OWNER_INVITATIONS: 'true',
    OWNER_INVITATIONS_PER_ACCOUNT_PER_DAY: '2',
    SMTP_URL: smtp.url,
    MAIL_FROM: 'Example API <no-reply@example.com>',
    ACCOUNT_TOKENS_RETENTION_DAYS: '30',
  });
});
afterAll(async () => {
  await t?.close();
  await smtp?.close();
});

async function invitationRows(createdBy: string) {
  return t.app.database.db
    .selectFrom('account_tokens')
    .select(['email', 'created_by'])
    .where('purpose', '=', 'invitation')
    .where('created_by', '=', createdBy)
    .execute();
}

describe('invitations by account holders', () => {
  it('sends by e-mail only, within the daily allowance, audit-logged with the inviter', async () => {
    const owner = await accountWithPassword(t, unique('owner'));
    const key = await issueKey(t, owner.id, { scopes: ['usage:read'] });
    const invitee = unique('friend');
    const sent = await call(t, 'POST', '/v1/invitations', {
      headers: bearer(key.secret),
      body: { email: invitee },
    });
    expect(sent.status).toBe(201);
    // The link went only to the mailbox: an accepted invitation is a confirmed address.
    expect(sent.body).toMatchObject({ email: invitee, email_sent: true, link: null });
    const mail = await smtp.next(invitee, /invited/);
    const token = new URL(linkIn(mail, `${t.url}/account/invitation?token=`)).searchParams.get(
      'token',
    )!;
    const joined = await t.app.identity.onboarding.acceptInvitation(token, {
      password: PASSWORD,
      name: null,
    });
    expect(joined.emailVerified).toBe(true);
    const audit = await t.app.database.db
      .selectFrom('audit_log')
      .select(['action', 'actor', 'details'])
      .where('subject', '=', invitee)
      .execute();
    expect(audit).toEqual([
      {
        action: 'account.invite',
        actor: key.key.id,
        details: expect.objectContaining({ invitedBy: owner.id }),
      },
    ]);

    // Hostile or pointless input: asking for the link, an address with an account, junk.
    const linkOnly = await call(t, 'POST', '/v1/invitations', {
      headers: bearer(key.secret),
      body: { email: unique('quiet'), send_email: false },
    });
    expect(linkOnly.status).toBe(400);
    expect(linkOnly.body.message).toMatch(/always goes by e-mail/);
    const taken = await call(t, 'POST', '/v1/invitations', {
      headers: bearer(key.secret),
      body: { email: invitee },
    });
    expect(taken.status).toBe(409);
    for (const email of ['not an address', 'a\u0000b@example.com', 'x'.repeat(400)]) {
      const junk = await call(t, 'POST', '/v1/invitations', {
        headers: bearer(key.secret),
        body: { email },
      });
      expect(junk.status, email).toBe(400);
    }
    // The allowance is the account's: another of its keys shares it.
    const other = await issueKey(t, owner.id, { scopes: ['usage:read'] });
    const second = await call(t, 'POST', '/v1/invitations', {
      headers: bearer(other.secret),
      body: { email: unique('second') },
    });
    expect(second.status).toBe(201);
    const third = await call(t, 'POST', '/v1/invitations', {
      headers: bearer(key.secret),
      body: { email: unique('third') },
    });
    expect(third.status).toBe(429);
    expect(third.body.error).toBe('TooManyRequests');
    expect(await invitationRows(owner.id)).toHaveLength(2);

    // A day later the allowance is back.
    t.clock.advance(DAY_MS + 1000);
    const later = await call(t, 'POST', '/v1/invitations', {
      headers: bearer(key.secret),
      body: { email: unique('later') },
    });
    expect(later.status).toBe(201);
    // Operators are not counted against any allowance.
    const operator = await adminKey(t);
    for (let i = 0; i < 3; i++) {
      const byOperator = await call(t, 'POST', '/v1/invitations', {
        headers: bearer(operator.secret),
        body: { email: unique('staff'), send_email: false },
      });
      expect(byOperator.status).toBe(201);
      expect(byOperator.body.link).toContain('/account/invitation?token=thiv_');
    }
  });

  it('refuses a holder whose address is not confirmed', async () => {
    const owner = await accountWithPassword(t, unique('unconfirmed'));
    const key = await issueKey(t, owner.id, { scopes: ['usage:read'] });
    await t.app.database.db
      .updateTable('accounts')
      .set({ email_verified: false })
      .where('id', '=', owner.id)
      .execute();
    const refused = await call(t, 'POST', '/v1/invitations', {
      headers: bearer(key.secret),
      body: { email: unique('nobody') },
    });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toBe('InvitationsNotAllowed');
    expect(await invitationRows(owner.id)).toEqual([]);
  });
});

describe('where account holders may not invite', () => {
  let off: IdentityTestApp;
  let noMail: IdentityTestApp;
  beforeAll(async () => {
    // The setting without the invite policy does nothing; with it but no SMTP, a clear 503.
    off = await startIdentityApp({ SIGNUP_POLICY: 'open', SIGNUP_OWNER_INVITATIONS: 'true' });
    noMail = await startIdentityApp({ SIGNUP_POLICY: 'invite', SIGNUP_OWNER_INVITATIONS: 'true' });
  });
  afterAll(async () => {
    await off?.close();
    await noMail?.close();
  });

  it('answers 403 InvitationsNotAllowed, or 503 without e-mail, and writes nothing', async () => {
    for (const [app, status, code] of [
      [off, 403, 'InvitationsNotAllowed'],
      [noMail, 503, 'EmailNotConfigured'],
    ] as const) {
      const owner = await accountWithPassword(app, unique('owner'));
      const key = await issueKey(app, owner.id, { scopes: ['usage:read'] });
      const refused = await call(app, 'POST', '/v1/invitations', {
        headers: bearer(key.secret),
        body: { email: unique('nobody') },
      });
      expect(refused.status).toBe(status);
      expect(refused.body.error).toBe(code);
      const rows = await app.app.database.db
        .selectFrom('account_tokens')
        .select('email')
        .where('created_by', '=', owner.id)
        .execute();
      expect(rows).toEqual([]);
    }
  });
});

describe('account tokens', () => {
  it('are swept once used or expired longer ago than the retention period', async () => {
    const db = t.app.database.db;
    const operator = { id: 'test' };
    const used = unique('used');
    const usedLink = await t.app.identity.onboarding.invite(used, operator, { send: false });
    await t.app.identity.onboarding.acceptInvitation(
      new URL(usedLink.link!).searchParams.get('token')!,
      { password: PASSWORD, name: null },
    );
    const expiring = unique('expiring');
    await t.app.identity.onboarding.invite(expiring, operator, { send: false });
    const emails = [used, expiring];
    const left = async () =>
      (
        await db
          .selectFrom('account_tokens')
          .select('email')
          .where('email', 'in', [...emails])
          .execute()
      )
        .map((r) => r.email)
        .sort();

    // Used today and unexpired: kept (support may ask about them).
    await t.app.identity.onboarding.sweepTokens();
    expect(await left()).toEqual([...emails].sort());
    // 31 days on: the used one is past retention; the invitation (7 days) expired 24 days ago.
    t.clock.advance(31 * DAY_MS);
    const fresh = unique('fresh');
    await t.app.identity.onboarding.invite(fresh, operator, { send: false });
    emails.push(fresh);
    await t.app.identity.onboarding.sweepTokens();
    expect(await left()).toEqual([expiring, fresh].sort());
    // 7 more days: the expired invitation passes retention too; the fresh one is unused.
    t.clock.advance(7 * DAY_MS);
    await t.app.identity.onboarding.sweepTokens();
    expect(await left()).toEqual([fresh]);
    // Idempotent, as when every replica sweeps.
    await expect(t.app.identity.onboarding.sweepTokens()).resolves.toBe(0);
  });
});

describe('tollhouse accounts invitations', () => {
  const run = async (args: string[]) => {
    const out: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(s) };
    const code = await identityCommands.accounts!.run(args, {
      io: { ...io, stdout: process.stdout, stdin: process.stdin },
      open: () => Promise.resolve(t.app.identity),
    });
    return { code, text: out.join('') };
  };

  it('lists open invitations and revokes them by address', async () => {
    const email = unique('listed');
    expect((await run(['invite', email, '--no-email'])).code).toBe(0);
    const listed = await run(['invitations', 'list']);
    expect(listed.code).toBe(0);
    const invitations = JSON.parse(listed.text).invitations as Array<Record<string, string>>;
    expect(invitations.find((i) => i.email === email)).toMatchObject({
      email,
      created_by: 'cli',
    });
    const revoked = await run(['invitations', 'revoke', email.toUpperCase()]);
    expect(revoked.code).toBe(0);
    expect(JSON.parse(revoked.text).revoked).toBe(1);
    const after = JSON.parse((await run(['invitations', 'list'])).text).invitations as Array<{
      email: string;
    }>;
    expect(after.map((i) => i.email)).not.toContain(email);
    // The link is dead; revoking again finds nothing.
    expect(await t.app.identity.onboarding.pendingInvitations()).not.toContainEqual(
      expect.objectContaining({ email }),
    );
    await expect(run(['invitations', 'revoke', email])).rejects.toThrow(/No open invitation/);
    await expect(run(['invitations'])).rejects.toThrow(/list or revoke/);
    await expect(run(['invitations', 'drop'])).rejects.toThrow(/expected list or revoke/);
    await expect(run(['invitations', 'revoke', 'nobody'])).rejects.toThrow(/not an email/);
    const audit = await t.app.database.db
      .selectFrom('audit_log')
      .select(['action', 'actor'])
      .where('subject', '=', email.toLowerCase())
      .where('action', '=', 'account.revoke_invitation')
      .execute();
    expect(audit).toEqual([{ action: 'account.revoke_invitation', actor: 'cli' }]);
  });
});
