// Customers onboard themselves (issue #18): sign-up under the deployment's policy, e-mail
// verification, password reset and invitations. Every link is a single-use token
// (account-tokens.ts) that expires by the injected clock.
//
// Two rules shape the answers. A form reached without signing in never tells whether an
// address has an account: sign-up and "forgot password" answer the same, in about the same
// time (mail goes out in the background), and the owner of the address learns the rest by
// e-mail. And without SMTP_URL nothing pretends to send: the forms say e-mail is not
// configured, and operators make the links on the command line.
import { sql } from 'kysely';
import type { Kysely, Transaction } from 'kysely';
import { recordAudit } from '../platform/audit.ts';
import type { Clock } from '../platform/clock.ts';
import type { Database } from '../database.ts';
import { Conflict, InvalidRequest, TooManyRequests } from '../platform/errors.ts';
import type { Logger } from '../platform/log.ts';
import { createBackgroundMail } from '../platform/mail.ts';
import type { MailMessage, Mailer } from '../platform/mail.ts';
import type { Secrets } from '../platform/secrets.ts';
import {
  consumeAccountToken,
  deleteAccountSessions,
  deleteAccountToken,
  findLiveAccountToken,
  insertAccountToken,
  isAccountToken,
  mintAccountToken,
  retireAccountTokens,
  retireInvitations,
  countInvitationsSince,
  deleteStaleAccountTokens,
  findPendingInvitations,
  revokeInvitationsTo,
} from './account-tokens.ts';
import {
  accountExistsMessage,
  invitationMessage,
  passwordChangedMessage,
  resetPasswordMessage,
  verifyEmailMessage,
} from './emails.ts';
import type { EmailContext } from './emails.ts';
import {
  EmailDomainNotAllowed,
  EmailNotConfigured,
  EmailNotSent,
  InvalidLink,
  InvitationsNotAllowed,
  AlreadyVerified,
  SignUpClosed,
} from './errors.ts';
import { hashPassword } from './passwords.ts';
import {
  findAccountByEmail,
  findAccountById,
  findAccountByIdForUpdate,
  insertAccount,
  toAccount,
  updateAccountById,
} from './queries.ts';
import type { Account } from './queries.ts';
import { ACCOUNTS_CHANNEL, checkEmail, checkName, checkPassword } from './service.ts';
import type { AccountsService, Actor } from './service.ts';
import type { AccountTokenPurpose } from './table.ts';
import { newId } from '../platform/ids.ts';

export type SignupPolicy = 'closed' | 'invite' | 'open';

export interface OnboardingConfig {
  publicUrl: string;
  signupPolicy: SignupPolicy;
  /** Lower-case domains open sign-up is limited to; empty → any. */
  signupEmailDomains: readonly string[];
  /** With the invite policy: account holders may invite too (SIGNUP_OWNER_INVITATIONS). */
  ownerInvitations: boolean;
  ownerInvitationsPerAccountPerDay: number;
  /** Used or expired tokens are deleted this long after (ACCOUNT_TOKENS_RETENTION_DAYS). */
  accountTokensRetentionDays: number;
}

// Lifetimes. A reset link is a password in transit: 30 minutes (OWASP Forgot Password Cheat
// Sheet: short-lived) covers a slow mailbox. A verification proves a mailbox and grants
// nothing by itself: a day, so it survives a night. An invitation waits for a person who did
// not ask for it: a week, as Keycloak's and Logto's defaults.
export const RESET_TTL_MINUTES = 30;
export const VERIFY_TTL_HOURS = 24;
export const INVITATION_TTL_DAYS = 7;
// A new address is proved like a sign-up's, so it lives as long: a day.
export const CHANGE_EMAIL_TTL_HOURS = 24;
const DAY_MS = 86_400_000;
export const TTL_MS: Record<AccountTokenPurpose, number> = {
  reset_password: RESET_TTL_MINUTES * 60_000,
  verify_email: VERIFY_TTL_HOURS * 3_600_000,
  invitation: INVITATION_TTL_DAYS * 86_400_000,
  change_email: CHANGE_EMAIL_TTL_HOURS * 3_600_000,
};
export const TOKEN_PATHS: Record<AccountTokenPurpose, string> = {
  verify_email: '/account/verify-email',
  reset_password: '/account/reset-password',
  invitation: '/account/invitation',
  change_email: '/account/confirm-email',
};
export const TOKEN_HASH_PURPOSE = 'account-tokens';
const UNIQUE_VIOLATION = '23505';

export interface IssuedLink {
  email: string;
  link: string;
  expiresAt: Date;
}

export interface Invitation {
  email: string;
  expiresAt: Date;
  /** True when the link went out by e-mail; then `link` is null (it travels only by mail). */
  emailSent: boolean;
  link: string | null;
}

export interface PendingInvitation {
  email: string;
  /** `acct_…`, `key_…` or `cli`. */
  createdBy: string;
  createdAt: Date;
  expiresAt: Date;
}

export interface OnboardingService {
  readonly policy: SignupPolicy;
  readonly signupEmailDomains: readonly string[];
  readonly emailConfigured: boolean;
  /** Open sign-up. The same outcome whether or not the address has an account (see above). */
  signUp(input: { email: string; password: string; name: string | null }): Promise<void>;
  /** Marks the address the link was sent to as confirmed. */
  verifyEmail(token: string): Promise<Account>;
  /** Sends a reset link if the address has an active account; the same outcome if not. */
  requestPasswordReset(email: string): Promise<void>;
  /** Sets the password, ends the account's sessions, and tells the owner by e-mail. */
  resetPassword(token: string, password: string): Promise<Account>;
  /** An invitation to create an account; sent by e-mail unless `send` is false or no mail. */
  invite(email: string, actor: Actor, options?: { send?: boolean }): Promise<Invitation>;
  acceptInvitation(
    token: string,
    input: { password: string; name: string | null },
  ): Promise<Account>;
  /** The address a still usable token was sent to, or null (decides whether a form is shown). */
  peek(token: unknown, purpose: AccountTokenPurpose): Promise<string | null>;
  /**
   * An account holder invites someone (SIGNUP_OWNER_INVITATIONS with the invite policy). Only
   * by e-mail, never a link in the answer: an accepted invitation counts as a confirmed
   * address, so the link must reach the mailbox and not the inviter.
   */
  inviteAsOwner(email: string, inviter: { accountId: string; actor: Actor }): Promise<Invitation>;
  /** Invitations not yet accepted, revoked or expired, newest first. */
  pendingInvitations(): Promise<PendingInvitation[]>;
  /** Ends the unused invitations to `email`; how many there were. */
  revokeInvitations(email: string, actor: Actor): Promise<number>;
  /** A new confirmation link to the account's address (the one from sign-up went missing). */
  resendVerification(accountId: string, actor: Actor): Promise<{ email: string }>;
  /** Deletes tokens used or expired more than the retention period ago; how many. */
  sweepTokens(): Promise<number>;
  /** A reset link for the operator to hand over (nothing is sent). */
  resetLink(email: string, actor: Actor): Promise<IssuedLink>;
  /** The operator confirms the address (they checked it some other way). */
  markVerified(accountId: string, actor: Actor): Promise<Account>;
  /** Waits for e-mails still being sent. */
  close(): Promise<void>;
}

export interface OnboardingDeps {
  db: Kysely<Database>;
  accounts: AccountsService;
  mailer: Mailer;
  secrets: Secrets;
  log: Logger;
  clock: Clock;
  config: OnboardingConfig;
  /** As for AccountsService: this process's caches follow a committed change at once. */
  onChanged?: (accountId: string) => Promise<void> | void;
}

export function createOnboardingService(deps: OnboardingDeps): OnboardingService {
  const { db, mailer, secrets, log, clock, config } = deps;
  const emailContext: EmailContext = { service: new URL(config.publicUrl).host };
  const hashToken = (token: string) => secrets.hmac(TOKEN_HASH_PURPOSE, token);
  const background = createBackgroundMail(mailer, log);
  const deliver = (message: MailMessage) => background.deliver(message);

  function link(purpose: AccountTokenPurpose, token: string): string {
    return `${config.publicUrl}${TOKEN_PATHS[purpose]}?token=${token}`;
  }

  async function issue(
    trxOrDb: Kysely<Database>,
    purpose: AccountTokenPurpose,
    input: { accountId: string | null; email: string; createdBy: string },
  ): Promise<IssuedLink & { hash: string }> {
    const token = mintAccountToken(purpose);
    const now = clock();
    const expiresAt = new Date(now.getTime() + TTL_MS[purpose]);
    const hash = hashToken(token);
    await insertAccountToken(trxOrDb, {
      token_hash: hash,
      purpose,
      account_id: input.accountId,
      email: input.email,
      created_by: input.createdBy,
      created_at: now,
      expires_at: expiresAt,
    });
    return { email: input.email, link: link(purpose, token), expiresAt, hash };
  }

  function checkDomain(email: string): void {
    if (config.signupEmailDomains.length === 0) return;
    const domain = email.slice(email.lastIndexOf('@') + 1).toLowerCase();
    if (!config.signupEmailDomains.includes(domain)) {
      throw new EmailDomainNotAllowed(config.signupEmailDomains);
    }
  }

  async function notifyChanged(trx: Kysely<Database>, accountId: string): Promise<void> {
    await sql`select pg_notify(${ACCOUNTS_CHANNEL}, ${accountId})`.execute(trx);
  }

  async function makeInvitation(
    rawEmail: string,
    input: {
      createdBy: string;
      actor: Actor;
      send: boolean;
      /** Runs first in the transaction; throws to refuse (the owners' allowance). */
      guard?: (trx: Transaction<Database>) => Promise<void>;
    },
  ): Promise<Invitation> {
    const email = checkEmail(rawEmail);
    // Saying the address is taken reveals nothing new to an operator, and little to an account
    // holder the per-account allowance does not already bound.
    if ((await findAccountByEmail(db, email)) !== undefined) {
      throw new Conflict('An account with this email already exists');
    }
    const issued = await db.transaction().execute(async (trx) => {
      await input.guard?.(trx);
      const made = await issue(trx, 'invitation', {
        accountId: null,
        email,
        createdBy: input.createdBy,
      });
      await recordAudit(trx, {
        actor: input.actor.id,
        action: 'account.invite',
        subject: email,
        requestId: input.actor.requestId ?? null,
        details: { expiresAt: made.expiresAt.toISOString(), invitedBy: input.createdBy },
      });
      return made;
    });
    if (input.send) {
      try {
        await mailer.send(
          invitationMessage(emailContext, {
            to: email,
            link: issued.link,
            days: INVITATION_TTL_DAYS,
          }),
        );
      } catch (error) {
        // No invitation the invitee never received: the sender tries again.
        await deleteAccountToken(db, issued.hash);
        throw new EmailNotSent({ cause: error });
      }
    }
    return {
      email,
      expiresAt: issued.expiresAt,
      emailSent: input.send,
      link: input.send ? null : issued.link,
    };
  }

  return {
    policy: config.signupPolicy,
    signupEmailDomains: config.signupEmailDomains,
    emailConfigured: mailer.configured,

    async signUp(input) {
      if (config.signupPolicy !== 'open') {
        throw new SignUpClosed(
          config.signupPolicy === 'invite'
            ? 'Accounts here are created by invitation only'
            : 'Accounts here are created by the operator',
        );
      }
      const email = checkEmail(input.email);
      checkPassword(input.password);
      const name = checkName(input.name === null || input.name.trim() === '' ? null : input.name);
      checkDomain(email);
      const existing = await findAccountByEmail(db, email);
      // Hashed either way, so the answer takes as long for a taken address as for a new one.
      const passwordHash = await hashPassword(input.password);
      let account: Account | null = null;
      if (existing === undefined) {
        try {
          const row = await db.transaction().execute(async (trx) => {
            const created = await insertAccount(trx, {
              id: newId('acct'),
              email,
              name,
              password_hash: passwordHash,
              email_verified: false,
            });
            // Every replica's verifier learns the account is unconfirmed (no gateway scope).
            await notifyChanged(trx, created.id);
            await recordAudit(trx, {
              actor: created.id,
              action: 'account.sign_up',
              subject: created.id,
              requestId: null,
              details: {},
            });
            return created;
          });
          await deps.onChanged?.(row.id);
          account = toAccount(row);
        } catch (error) {
          // Created meanwhile by another request: answered as for any existing address.
          if ((error as { code?: string }).code !== UNIQUE_VIOLATION) throw error;
        }
      }
      if (!mailer.configured) return;
      if (account !== null) {
        const issued = await issue(db, 'verify_email', {
          accountId: account.id,
          email,
          createdBy: 'self',
        });
        deliver(
          verifyEmailMessage(emailContext, {
            to: email,
            link: issued.link,
            hours: VERIFY_TTL_HOURS,
          }),
        );
      } else if (existing !== undefined && existing.status === 'active') {
        const issued = await issue(db, 'reset_password', {
          accountId: existing.id,
          email: existing.email,
          createdBy: 'self',
        });
        deliver(
          accountExistsMessage(emailContext, {
            to: existing.email,
            link: issued.link,
            minutes: RESET_TTL_MINUTES,
          }),
        );
      }
    },

    async verifyEmail(token) {
      if (!isAccountToken(token, 'verify_email')) throw new InvalidLink();
      const now = clock();
      const row = await db.transaction().execute(async (trx) => {
        const used = await consumeAccountToken(trx, hashToken(token), 'verify_email', now);
        if (used === undefined || used.account_id === null) throw new InvalidLink();
        const current = await findAccountByIdForUpdate(trx, used.account_id);
        // The link confirms the address it was sent to; if the account's address changed
        // since, it confirms nothing.
        if (current === undefined || current.email.toLowerCase() !== used.email.toLowerCase()) {
          throw new InvalidLink();
        }
        const updated = await updateAccountById(trx, current.id, { email_verified: true });
        await retireAccountTokens(trx, current.id, 'verify_email', now);
        await notifyChanged(trx, current.id);
        await recordAudit(trx, {
          actor: current.id,
          action: 'account.verify_email',
          subject: current.id,
          requestId: null,
          details: {},
        });
        return updated!;
      });
      await deps.onChanged?.(row.id);
      return toAccount(row);
    },

    async requestPasswordReset(rawEmail) {
      if (!mailer.configured) throw new EmailNotConfigured();
      // A malformed address cannot have an account: the same answer as an unknown one.
      const email = rawEmail.trim();
      if (email.length > 320 || !email.includes('@')) return;
      const account = await findAccountByEmail(db, email);
      if (account === undefined || account.status !== 'active') return;
      const issued = await issue(db, 'reset_password', {
        accountId: account.id,
        email: account.email,
        createdBy: 'self',
      });
      deliver(
        resetPasswordMessage(emailContext, {
          to: account.email,
          link: issued.link,
          minutes: RESET_TTL_MINUTES,
        }),
      );
    },

    async resetPassword(token, password) {
      if (!isAccountToken(token, 'reset_password')) throw new InvalidLink();
      // Checked before the token is used up: a too-short password must not cost the link.
      checkPassword(password);
      const passwordHash = await hashPassword(password);
      const now = clock();
      const { row, sessions } = await db.transaction().execute(async (trx) => {
        const used = await consumeAccountToken(trx, hashToken(token), 'reset_password', now);
        if (used === undefined || used.account_id === null) throw new InvalidLink();
        const current = await findAccountByIdForUpdate(trx, used.account_id);
        if (current === undefined || current.status !== 'active') throw new InvalidLink();
        const sameAddress = current.email.toLowerCase() === used.email.toLowerCase();
        const updated = await updateAccountById(trx, current.id, {
          password_hash: passwordHash,
          // The link reached this mailbox: that confirms the address as a verification would.
          ...(sameAddress ? { email_verified: true } : {}),
        });
        await retireAccountTokens(trx, current.id, 'reset_password', now);
        const ended = await deleteAccountSessions(trx, current.id);
        await notifyChanged(trx, current.id);
        await recordAudit(trx, {
          actor: current.id,
          action: 'account.reset_password',
          subject: current.id,
          requestId: null,
          details: { sessionsEnded: ended },
        });
        return { row: updated!, sessions: ended };
      });
      log.info({ accountId: row.id, sessions }, 'password reset');
      await deps.onChanged?.(row.id);
      deliver(
        passwordChangedMessage(emailContext, {
          to: row.email,
          at: now,
          resetUrl: `${config.publicUrl}/account/forgot-password`,
        }),
      );
      return toAccount(row);
    },

    async invite(rawEmail, actor, options = {}) {
      return makeInvitation(rawEmail, {
        createdBy: actor.id,
        actor,
        send: (options.send ?? true) && mailer.configured,
      });
    },

    async inviteAsOwner(rawEmail, inviter) {
      if (!config.ownerInvitations || config.signupPolicy !== 'invite') {
        throw new InvitationsNotAllowed('Only operators send invitations on this service');
      }
      const self = await findAccountById(db, inviter.accountId);
      if (self === undefined || !self.email_verified) {
        throw new InvitationsNotAllowed(
          'Confirm the e-mail address of your account before inviting others',
        );
      }
      if (!mailer.configured) throw new EmailNotConfigured();
      return makeInvitation(rawEmail, {
        // The account, not the key that asked: the daily allowance is the account's.
        createdBy: inviter.accountId,
        actor: inviter.actor,
        send: true,
        async guard(trx) {
          // One inviter at a time, so two requests cannot both fit in the last slot.
          await sql`select pg_advisory_xact_lock(hashtext(${`owner-invitations:${inviter.accountId}`}))`.execute(
            trx,
          );
          const since = new Date(clock().getTime() - DAY_MS);
          const sent = await countInvitationsSince(trx, inviter.accountId, since);
          if (sent >= config.ownerInvitationsPerAccountPerDay) {
            throw new TooManyRequests(
              `An account may send ${config.ownerInvitationsPerAccountPerDay} invitations in 24 hours; try again later`,
            );
          }
        },
      });
    },

    async pendingInvitations() {
      const rows = await findPendingInvitations(db, clock());
      return rows.map((row) => ({
        email: row.email,
        createdBy: row.created_by,
        createdAt: row.created_at,
        expiresAt: row.expires_at,
      }));
    },

    async revokeInvitations(rawEmail, actor) {
      const email = rawEmail.trim();
      return db.transaction().execute(async (trx) => {
        const revoked = await revokeInvitationsTo(trx, email, clock());
        if (revoked > 0) {
          await recordAudit(trx, {
            actor: actor.id,
            action: 'account.revoke_invitation',
            subject: email.toLowerCase(),
            requestId: actor.requestId ?? null,
            details: { revoked },
          });
        }
        return revoked;
      });
    },

    async resendVerification(accountId, actor) {
      const account = await findAccountById(db, accountId);
      if (account === undefined) throw new InvalidRequest(`No account ${accountId}`);
      if (account.email_verified) throw new AlreadyVerified();
      if (!mailer.configured) throw new EmailNotConfigured();
      const issued = await db.transaction().execute(async (trx) => {
        // The newest link is the one the holder will open: older ones stop working.
        await retireAccountTokens(trx, accountId, 'verify_email', clock());
        const made = await issue(trx, 'verify_email', {
          accountId,
          email: account.email,
          createdBy: 'self',
        });
        await recordAudit(trx, {
          actor: actor.id,
          action: 'account.resend_verification',
          subject: accountId,
          requestId: actor.requestId ?? null,
          details: {},
        });
        return made;
      });
      deliver(
        verifyEmailMessage(emailContext, {
          to: account.email,
          link: issued.link,
          hours: VERIFY_TTL_HOURS,
        }),
      );
      return { email: account.email };
    },

    async sweepTokens() {
      const before = new Date(clock().getTime() - config.accountTokensRetentionDays * DAY_MS);
      return deleteStaleAccountTokens(db, before);
    },

    async acceptInvitation(token, input) {
      if (!isAccountToken(token, 'invitation')) throw new InvalidLink();
      checkPassword(input.password);
      const name = checkName(input.name === null || input.name.trim() === '' ? null : input.name);
      const passwordHash = await hashPassword(input.password);
      const now = clock();
      const row = await db.transaction().execute(async (trx) => {
        const used = await consumeAccountToken(trx, hashToken(token), 'invitation', now);
        if (used === undefined) throw new InvalidLink();
        if ((await findAccountByEmail(trx, used.email)) !== undefined) {
          throw new Conflict(
            'An account with this address exists already: sign in, or reset its password',
          );
        }
        const created = await insertAccount(trx, {
          id: newId('acct'),
          email: used.email,
          name,
          password_hash: passwordHash,
          // The invitation reached this mailbox.
          email_verified: true,
        });
        await retireInvitations(trx, used.email, now);
        await recordAudit(trx, {
          actor: created.id,
          action: 'account.accept_invitation',
          subject: created.id,
          requestId: null,
          details: { invitedBy: used.created_by },
        });
        return created;
      });
      return toAccount(row);
    },

    async peek(token, purpose) {
      if (!isAccountToken(token, purpose)) return null;
      const row = await findLiveAccountToken(db, hashToken(token), purpose, clock());
      return row?.email ?? null;
    },

    async resetLink(rawEmail, actor) {
      const account = await deps.accounts.find(rawEmail);
      if (account.status !== 'active') {
        throw new Conflict('The account is disabled: enable it before resetting its password');
      }
      const issued = await db.transaction().execute(async (trx) => {
        const made = await issue(trx, 'reset_password', {
          accountId: account.id,
          email: account.email,
          createdBy: actor.id,
        });
        await recordAudit(trx, {
          actor: actor.id,
          action: 'account.reset_link',
          subject: account.id,
          requestId: actor.requestId ?? null,
          details: {},
        });
        return made;
      });
      return { email: issued.email, link: issued.link, expiresAt: issued.expiresAt };
    },

    async markVerified(accountId, actor) {
      const row = await db.transaction().execute(async (trx) => {
        const current = await findAccountByIdForUpdate(trx, accountId);
        if (current === undefined) throw new InvalidRequest(`No account ${accountId}`);
        const updated = await updateAccountById(trx, accountId, { email_verified: true });
        await retireAccountTokens(trx, accountId, 'verify_email', clock());
        await notifyChanged(trx, accountId);
        await recordAudit(trx, {
          actor: actor.id,
          action: 'account.verify_email',
          subject: accountId,
          requestId: actor.requestId ?? null,
          details: {},
        });
        return updated!;
      });
      await deps.onChanged?.(row.id);
      return toAccount(row);
    },

    async close() {
      await background.drain();
    },
  };
}
