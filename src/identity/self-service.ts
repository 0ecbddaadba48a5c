// Account self-service (issue #18 item 7): the holder of an account changes its password and
// its e-mail address, sees and ends its sign-ins, and deletes it. Every change that could lock
// the owner out asks for the current password again (a stolen console tab or key alone cannot
// take the account over), and the owner's address hears of it.
//
// Deleting keeps the account row: usage and statements refer to it and stay for the operator's
// books. It is disabled and anonymised for sign-in instead (no address, no password, no name),
// and what other capabilities own is ended through their ports (API keys revoked by keys'
// service), never by deleting their rows.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { recordAudit } from '../platform/audit.ts';
import type { Clock } from '../platform/clock.ts';
import type { Database } from '../database.ts';
import { Conflict, NotFound, TooManyRequests } from '../platform/errors.ts';
import type { Logger } from '../platform/log.ts';
import { createBackgroundMail } from '../platform/mail.ts';
import type { MailMessage, Mailer } from '../platform/mail.ts';
import type { Secrets } from '../platform/secrets.ts';
import {
  consumeAccountToken,
  deleteAccountSessions,
  insertAccountToken,
  isAccountToken,
  mintAccountToken,
  retireAccountTokens,
} from './account-tokens.ts';
import {
  accountDeletedMessage,
  confirmEmailChangeMessage,
  emailChangeNoticeMessage,
  passwordChangedMessage,
} from './emails.ts';
import type { EmailContext } from './emails.ts';
import { EmailNotConfigured, InvalidLink, WrongPassword } from './errors.ts';
import { CHANGE_EMAIL_TTL_HOURS, TOKEN_HASH_PURPOSE, TOKEN_PATHS, TTL_MS } from './onboarding.ts';
import { hashPassword } from './passwords.ts';
import {
  findAccountByEmail,
  findAccountByIdForUpdate,
  toAccount,
  updateAccountById,
} from './queries.ts';
import type { Account } from './queries.ts';
import { ACCOUNTS_CHANNEL, checkEmail, checkPassword } from './service.ts';
import type { AccountsService, AppsService } from './service.ts';
import type { RateLimiter } from './rate-limit.ts';
import { deleteIdentitiesByAccount } from './upstream-queries.ts';
import {
  deleteAccountGrants,
  deleteSessionRow,
  findAccountSessionRow,
  listAccountSessionRows,
} from './sessions.ts';

/** One sign-in of the account, as its holder sees it. */
export interface AccountSession {
  /** `ses_…` a browser session at the sign-in pages, `grt_…` an app's (or the console's)
   * grant that holds refresh tokens. */
  id: string;
  kind: 'browser_session' | 'refresh_grant';
  clients: Array<{ clientId: string; name: string | null }>;
  createdAt: Date | null;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
}

/** What identity asks of API keys (keys' service, wired in app.ts): identity imports no keys. */
export interface AccountKeys {
  /** Revokes every API key of the account; returns how many were active. */
  revokeAll(accountId: string, requestId: string | null): Promise<number>;
}

export interface SelfServiceCaller {
  accountId: string;
  /** `acct_…` or `key_…` for the audit log. */
  actor: string;
  requestId: string | null;
}

export interface SelfService {
  changePassword(
    caller: SelfServiceCaller,
    input: { currentPassword: string; newPassword: string },
  ): Promise<{ sessionsEnded: number }>;
  /** Sends a confirmation link to the new address; the same answer whether or not the address
   * belongs to another account (then no link is sent). */
  requestEmailChange(
    caller: SelfServiceCaller,
    input: { currentPassword: string; email: string },
  ): Promise<{ email: string; expiresAt: Date }>;
  /** Uses the link: the account's address becomes the one the link was sent to. */
  confirmEmailChange(token: string): Promise<Account>;
  listSessions(accountId: string): Promise<AccountSession[]>;
  /** NotFound unless `id` is one of the account's own live sign-ins. */
  endSession(caller: SelfServiceCaller, id: string): Promise<void>;
  endAllSessions(caller: SelfServiceCaller): Promise<number>;
  deleteAccount(
    caller: SelfServiceCaller,
    input: { currentPassword: string },
  ): Promise<{ keysRevoked: number; appsDisabled: number; sessionsEnded: number }>;
  close(): Promise<void>;
}

export interface SelfServiceDeps {
  db: Kysely<Database>;
  accounts: AccountsService;
  apps: AppsService;
  /** Absent in tests of identity alone (then no keys are revoked). */
  keys?: AccountKeys;
  mailer: Mailer;
  secrets: Secrets;
  log: Logger;
  clock: Clock;
  publicUrl: string;
  /** Password attempts per account (the sign-in page's limiter: one budget for both). */
  passwordAttempts: RateLimiter;
  /** Names of the first-party clients (the console), which have no row in `apps`. */
  clientName(clientId: string): Promise<string | null>;
  onChanged?: (accountId: string) => Promise<void> | void;
}

// Session ids as the holder sees them: the adapter's stored id (a hex HMAC of the cookie value,
// so it grants nothing) or the grant id (oidc-provider's nanoid).
export const SESSION_ID = /^(ses_[0-9a-f]{64}|grt_[A-Za-z0-9_-]{1,64})$/;
const UNIQUE_VIOLATION = '23505';

export function createSelfService(deps: SelfServiceDeps): SelfService {
  const { db, accounts, mailer, secrets, log, clock } = deps;
  const emailContext: EmailContext = { service: new URL(deps.publicUrl).host };
  const resetUrl = `${deps.publicUrl}/account/forgot-password`;
  const background = createBackgroundMail(mailer, log);
  const deliver = (message: MailMessage) => background.deliver(message);

  /** The caller's account if `password` is its password; WrongPassword otherwise (the same
   * for an account without a password, which signs in upstream or by link). */
  async function confirmPassword(accountId: string, password: string): Promise<Account> {
    const account = await accounts.get(accountId);
    if (account === null) throw new WrongPassword();
    // A stolen key must not become a way to guess the password behind it.
    const wait = deps.passwordAttempts.hit(account.email.toLowerCase());
    if (wait > 0) throw new TooManyRequests(`Too many password attempts; retry in ${wait} s`);
    const checked = await accounts.authenticate(account.email, password);
    if (checked === null || checked.id !== accountId) throw new WrongPassword();
    return checked;
  }

  async function notify(trx: Kysely<Database>, accountId: string) {
    await sql`select pg_notify(${ACCOUNTS_CHANNEL}, ${accountId})`.execute(trx);
  }

  return {
    async changePassword(caller, input) {
      checkPassword(input.newPassword);
      const account = await confirmPassword(caller.accountId, input.currentPassword);
      const passwordHash = await hashPassword(input.newPassword);
      const now = clock();
      const ended = await db.transaction().execute(async (trx) => {
        await updateAccountById(trx, account.id, { password_hash: passwordHash });
        // Outstanding reset links were asked for under the old password: a new one ends them.
        await retireAccountTokens(trx, account.id, 'reset_password', now);
        const count = await deleteAccountSessions(trx, account.id);
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'account.change_password',
          subject: account.id,
          requestId: caller.requestId,
          details: { sessionsEnded: count },
        });
        return count;
      });
      deliver(passwordChangedMessage(emailContext, { to: account.email, at: now, resetUrl }));
      return { sessionsEnded: ended };
    },

    async requestEmailChange(caller, input) {
      const email = checkEmail(input.email);
      const account = await confirmPassword(caller.accountId, input.currentPassword);
      if (!mailer.configured) throw new EmailNotConfigured();
      if (email.toLowerCase() === account.email.toLowerCase()) {
        throw new Conflict('This is already the address of the account');
      }
      const now = clock();
      const expiresAt = new Date(now.getTime() + TTL_MS.change_email);
      const taken = (await findAccountByEmail(db, email)) !== undefined;
      const deliverAfter: MailMessage[] = [];
      await db.transaction().execute(async (trx) => {
        // One pending change at a time: a new request ends the links of the older ones.
        await retireAccountTokens(trx, account.id, 'change_email', now);
        if (!taken) {
          const token = mintAccountToken('change_email');
          await insertAccountToken(trx, {
            token_hash: secrets.hmac(TOKEN_HASH_PURPOSE, token),
            purpose: 'change_email',
            account_id: account.id,
            email,
            created_by: caller.actor,
            created_at: now,
            expires_at: expiresAt,
          });
          deliverAfter.push(
            confirmEmailChangeMessage(emailContext, {
              to: email,
              link: `${deps.publicUrl}${TOKEN_PATHS.change_email}?token=${token}`,
              hours: CHANGE_EMAIL_TTL_HOURS,
            }),
          );
        }
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'account.request_email_change',
          subject: account.id,
          requestId: caller.requestId,
          details: {},
        });
      });
      for (const message of deliverAfter.splice(0)) deliver(message);
      // A taken address gets no link (it belongs to someone else) and the caller hears the
      // same as for a free one: the API must not confirm which addresses have accounts.
      deliver(
        emailChangeNoticeMessage(emailContext, {
          to: account.email,
          newEmail: email,
          at: now,
          done: false,
          resetUrl,
        }),
      );
      return { email, expiresAt };
    },

    async confirmEmailChange(token) {
      if (!isAccountToken(token, 'change_email')) throw new InvalidLink();
      const now = clock();
      let result: { row: Account; oldEmail: string };
      try {
        result = await db.transaction().execute(async (trx) => {
          const used = await consumeAccountToken(
            trx,
            secrets.hmac(TOKEN_HASH_PURPOSE, token),
            'change_email',
            now,
          );
          if (used === undefined || used.account_id === null) throw new InvalidLink();
          const current = await findAccountByIdForUpdate(trx, used.account_id);
          if (current === undefined || current.status !== 'active') throw new InvalidLink();
          const updated = await updateAccountById(trx, current.id, {
            email: used.email,
            // The link reached the new mailbox: that is what verifying an address means.
            email_verified: true,
          });
          // Links sent to the old address (reset, verify) must not act on the new one.
          for (const purpose of ['change_email', 'reset_password', 'verify_email'] as const) {
            await retireAccountTokens(trx, current.id, purpose, now);
          }
          await notify(trx, current.id);
          await recordAudit(trx, {
            actor: current.id,
            action: 'account.change_email',
            subject: current.id,
            requestId: null,
            details: {},
          });
          return { row: toAccount(updated!), oldEmail: current.email };
        });
      } catch (error) {
        // Taken by someone else since the link was sent: the link does nothing.
        if ((error as { code?: string }).code === UNIQUE_VIOLATION) throw new InvalidLink();
        throw error;
      }
      await deps.onChanged?.(result.row.id);
      deliver(
        emailChangeNoticeMessage(emailContext, {
          to: result.oldEmail,
          newEmail: result.row.email,
          at: now,
          done: true,
          resetUrl,
        }),
      );
      return result.row;
    },

    async listSessions(accountId) {
      const rows = await listAccountSessionRows(db, accountId, clock());
      const seconds = (value: unknown) =>
        typeof value === 'number' && Number.isFinite(value) ? new Date(value * 1000) : null;
      const sessions: AccountSession[] = [];
      const grants = new Map<string, AccountSession>();
      const names = new Map<string, string | null>();
      const client = async (clientId: string) => {
        if (!names.has(clientId)) names.set(clientId, await deps.clientName(clientId));
        return { clientId, name: names.get(clientId) ?? null };
      };
      for (const row of rows) {
        const p = row.payload;
        if (row.model === 'Session') {
          const authorizations =
            typeof p.authorizations === 'object' && p.authorizations !== null
              ? Object.keys(p.authorizations)
              : [];
          sessions.push({
            id: `ses_${row.id}`,
            kind: 'browser_session',
            clients: await Promise.all(authorizations.map(client)),
            createdAt: seconds(p.loginTs) ?? seconds(p.iat),
            // oidc-provider re-saves a session whenever it is used, stamping `iat`.
            lastUsedAt: seconds(p.iat),
            expiresAt: row.expires_at,
          });
          continue;
        }
        if (row.grant_id === null) continue;
        // With rotation every refresh mints a new token: the newest `iat` is the last use.
        const iat = seconds(p.iat);
        const existing = grants.get(row.grant_id);
        if (existing === undefined) {
          const entry: AccountSession = {
            id: `grt_${row.grant_id}`,
            kind: 'refresh_grant',
            clients: typeof p.clientId === 'string' ? [await client(p.clientId)] : [],
            createdAt: iat,
            lastUsedAt: iat,
            expiresAt: row.expires_at,
          };
          grants.set(row.grant_id, entry);
          sessions.push(entry);
        } else {
          const earlier = (a: Date | null, b: Date | null) => (a === null || (b && b < a) ? b : a);
          const later = (a: Date | null, b: Date | null) => (a === null || (b && b > a) ? b : a);
          existing.createdAt = earlier(existing.createdAt, iat);
          existing.lastUsedAt = later(existing.lastUsedAt, iat);
          existing.expiresAt = later(existing.expiresAt, row.expires_at);
        }
      }
      return sessions.sort(
        (a, b) => (b.lastUsedAt?.getTime() ?? 0) - (a.lastUsedAt?.getTime() ?? 0),
      );
    },

    async endSession(caller, id) {
      const notFound = () => new NotFound(`No session ${id.slice(0, 80)}`);
      if (!SESSION_ID.test(id)) throw notFound();
      const ended = await db.transaction().execute(async (trx) => {
        if (id.startsWith('grt_')) {
          return deleteAccountGrants(trx, caller.accountId, [id.slice(4)]);
        }
        const row = await findAccountSessionRow(trx, caller.accountId, id.slice(4));
        if (row === undefined) return 0;
        await deleteSessionRow(trx, row.id);
        // What the session authorized goes with it: its apps' refresh tokens would outlive it.
        const authorizations = (row.payload.authorizations ?? {}) as Record<string, unknown>;
        const grantIds = Object.values(authorizations)
          .map((a) => (a as { grantId?: unknown } | null)?.grantId)
          .filter((g): g is string => typeof g === 'string');
        return 1 + (await deleteAccountGrants(trx, caller.accountId, grantIds));
      });
      if (ended === 0) throw notFound();
      await recordAudit(db, {
        actor: caller.actor,
        action: 'account.end_session',
        subject: caller.accountId,
        requestId: caller.requestId,
        details: { rows: ended },
      });
    },

    async endAllSessions(caller) {
      return db.transaction().execute(async (trx) => {
        const count = await deleteAccountSessions(trx, caller.accountId);
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'account.end_sessions',
          subject: caller.accountId,
          requestId: caller.requestId,
          details: { rows: count },
        });
        return count;
      });
    },

    async deleteAccount(caller, input) {
      const account = await confirmPassword(caller.accountId, input.currentPassword);
      if (account.isAdmin) {
        // Checked again under lock below; this answers early before anything is revoked.
        await assertNotLastOperator(db, account.id, false);
      }
      // What other capabilities own first: if the account row cannot be changed afterwards,
      // the holder can try again (their password still works) and nothing is half-deleted.
      const keysRevoked = (await deps.keys?.revokeAll(account.id, caller.requestId)) ?? 0;
      let appsDisabled = 0;
      const actor = { id: caller.actor, requestId: caller.requestId, accountId: account.id };
      for (let cursor: string | undefined; ;) {
        const page = await deps.apps.list(account.id, { limit: 100, cursor });
        for (const app of page.items) {
          if (app.status === 'disabled') continue;
          await deps.apps.update(app.id, { status: 'disabled' }, actor, null);
          appsDisabled += 1;
        }
        if (page.nextCursor === null) break;
        cursor = page.nextCursor;
      }
      const now = clock();
      const sessionsEnded = await db.transaction().execute(async (trx) => {
        if (account.isAdmin) await assertNotLastOperator(trx, account.id, true);
        const current = await findAccountByIdForUpdate(trx, account.id);
        if (current === undefined) throw new WrongPassword();
        await updateAccountById(trx, account.id, {
          status: 'disabled',
          // The address is freed for a new sign-up and names no one; `.invalid` (RFC 2606)
          // can never receive mail. The id keeps it unique.
          email: `deleted+${account.id}@deleted.invalid`,
          email_verified: false,
          name: null,
          password_hash: null,
          is_admin: false,
        });
        for (const purpose of ['change_email', 'reset_password', 'verify_email'] as const) {
          await retireAccountTokens(trx, account.id, purpose, now);
        }
        const ended = await deleteAccountSessions(trx, account.id);
        // Upstream identities are freed like the address: they may link to a new account.
        await deleteIdentitiesByAccount(trx, account.id);
        await notify(trx, account.id);
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'account.delete',
          subject: account.id,
          requestId: caller.requestId,
          details: { keysRevoked, appsDisabled, sessionsEnded: ended },
        });
        return ended;
      });
      await deps.onChanged?.(account.id);
      deliver(accountDeletedMessage(emailContext, { to: account.email, at: now }));
      return { keysRevoked, appsDisabled, sessionsEnded };
    },

    async close() {
      await background.drain();
    },
  };
}

/** An operator may leave only if another active operator remains to run the service. */
async function assertNotLastOperator(
  db: Kysely<Database>,
  accountId: string,
  lock: boolean,
): Promise<void> {
  let query = db
    .selectFrom('accounts')
    .select('id')
    .where('is_admin', '=', true)
    .where('status', '=', 'active')
    .orderBy('id');
  // Two operators deleting themselves at once would each see the other: locking every
  // operator row, in one order (no deadlock), makes the second wait and then see one left.
  if (lock) query = query.forUpdate();
  const operators = await query.execute();
  if (!operators.some((row) => row.id !== accountId)) {
    throw new Conflict(
      'You are the last operator: make another account an operator before deleting this one',
    );
  }
}
