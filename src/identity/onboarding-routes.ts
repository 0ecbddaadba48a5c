// HTTP for onboarding (issue #18): the pages under /account/ (sign up, confirm an address,
// forgot password, new password, accept an invitation) and POST /v1/invitations for operators.
// The pages work like the sign-in pages (interactions.ts): no-store, the sign-in pages' CSP and
// security headers, a double-submit CSRF token on every form, rate limits per IP and per
// address. A link's token arrives in the query string (request logs record the path only) and
// is used up only by the form's POST, never by opening the link.
import { createCsrf } from '../platform/csrf.ts';
import type { Context } from 'koa';
import { z } from 'zod';
import type { Access } from '../platform/authz.ts';
import { principalKind } from '../platform/authz.ts';
import { accountSchema, toAccountJson } from './schemas.ts';
import type { AccountsService } from './service.ts';
import type { AuthState } from '../platform/auth.ts';
import type { AppError } from '../platform/errors.ts';
import { Conflict, InvalidRequest, NotFound, TooManyRequests } from '../platform/errors.ts';
import { defineRoute } from '../platform/http.ts';
import type { Router } from '../platform/http.ts';
import { EmailDomainNotAllowed, EmailNotConfigured, InvalidLink, SignUpClosed } from './errors.ts';
import { RESET_TTL_MINUTES } from './onboarding.ts';
import type { OnboardingService } from './onboarding.ts';
import type { SelfService } from './self-service.ts';
import {
  closedPage,
  donePage,
  emailNotConfiguredPage,
  forgotPasswordPage,
  invalidLinkPage,
  invitationPage,
  resetPasswordPage,
  resetRequestedPage,
  signUpDonePage,
  signUpPage,
  verifyEmailPage,
} from './onboarding-pages.ts';
import { readVerifiedForm, sendPage, withinLimits } from './page-forms.ts';
import type { RateLimiter } from './rate-limit.ts';

const CSRF_COOKIE = 'tollhouse_account_csrf';
const BASE = '/account';
// An interaction uid from the sign-in page (oidc-provider's nanoid), carried so the person can
// return to the sign-in they came from.
const INTERACTION_UID = /^[A-Za-z0-9_-]{1,64}$/;
// Where "Continue to sign in" leads when no sign-in is waiting: the console starts one.
const CONSOLE = '/console';
const TOO_MANY = 'Too many attempts from here. Wait a while, then try again.';
const MISMATCH = 'The two passwords are not the same.';

export const PATHS = {
  signUp: `${BASE}/sign-up`,
  verifyEmail: `${BASE}/verify-email`,
  forgotPassword: `${BASE}/forgot-password`,
  resetPassword: `${BASE}/reset-password`,
  invitation: `${BASE}/invitation`,
  confirmEmail: `${BASE}/confirm-email`,
} as const;

export interface OnboardingRoutesDeps {
  onboarding: OnboardingService;
  secureCookies: boolean;
  /** Form posts per client IP. */
  perIp: RateLimiter;
  /** E-mails one address may be sent (sign-up, forgot password). */
  perEmail: RateLimiter;
  /** Confirms a change of address (the link sent to the new one). */
  selfService: SelfService;
}

/** The sign-in page's links to these pages (interactions.ts). */
export function loginLinks(onboarding: OnboardingService) {
  return (uid: string) => ({
    forgotPassword: PATHS.forgotPassword,
    signUp:
      onboarding.policy === 'open'
        ? `${PATHS.signUp}?interaction=${encodeURIComponent(uid)}`
        : null,
  });
}

export function onboardingPageRoutes(router: Router, deps: OnboardingRoutesDeps): void {
  const { onboarding } = deps;

  const csrf = createCsrf({ cookie: CSRF_COOKIE, path: BASE, secure: deps.secureCookies });

  function signInFrom(form: Record<string, string> | URLSearchParams): string {
    const uid = form instanceof URLSearchParams ? form.get('interaction') : form.interaction;
    return typeof uid === 'string' && INTERACTION_UID.test(uid) ? `/interaction/${uid}` : CONSOLE;
  }

  const normalized = (email: string) => email.trim().toLowerCase().slice(0, 320);
  const queryToken = (ctx: Context) =>
    typeof ctx.query.token === 'string' ? ctx.query.token : undefined;

  // --- sign up -------------------------------------------------------------------------
  function closed(ctx: Context) {
    sendPage(
      ctx,
      403,
      onboarding.policy === 'invite'
        ? closedPage(
            'Sign-up is by invitation',
            'Accounts here are created from an invitation. Ask the operator of this service for one.',
          )
        : closedPage(
            'Sign-up is closed',
            'Accounts here are created by the operator of this service. Ask them for one.',
          ),
    );
  }

  function renderSignUp(
    ctx: Context,
    status: number,
    form: { email: string; name: string; interaction: string },
    error: string | null,
  ) {
    const interaction = INTERACTION_UID.test(form.interaction) ? form.interaction : '';
    sendPage(
      ctx,
      status,
      signUpPage({
        action:
          interaction === ''
            ? PATHS.signUp
            : `${PATHS.signUp}?interaction=${encodeURIComponent(interaction)}`,
        csrf: csrf.token(ctx),
        email: form.email,
        name: form.name,
        domains: onboarding.signupEmailDomains,
        error,
      }),
    );
  }

  router.get(PATHS.signUp, async function showSignUp(ctx) {
    if (onboarding.policy !== 'open') return closed(ctx);
    const interaction = typeof ctx.query.interaction === 'string' ? ctx.query.interaction : '';
    renderSignUp(ctx, 200, { email: '', name: '', interaction }, null);
  });

  router.post(PATHS.signUp, async function submitSignUp(ctx) {
    if (onboarding.policy !== 'open') return closed(ctx);
    const form = await readVerifiedForm(ctx, csrf);
    if (form === null) return;
    const email = (form.email ?? '').slice(0, 320);
    const values = {
      email,
      name: (form.name ?? '').slice(0, 200),
      interaction: typeof ctx.query.interaction === 'string' ? ctx.query.interaction : '',
    };
    if (
      !withinLimits(ctx, [
        [deps.perIp, ctx.ip],
        [deps.perEmail, normalized(email)],
      ])
    ) {
      return renderSignUp(ctx, 429, values, TOO_MANY);
    }
    if ((form.password ?? '') !== (form.password_confirm ?? '')) {
      return renderSignUp(ctx, 400, values, MISMATCH);
    }
    try {
      await onboarding.signUp({
        email,
        password: form.password ?? '',
        name: values.name === '' ? null : values.name,
      });
    } catch (error) {
      if (error instanceof SignUpClosed) return closed(ctx);
      if (error instanceof InvalidRequest || error instanceof EmailDomainNotAllowed) {
        return renderSignUp(ctx, error.status, values, error.message);
      }
      throw error;
    }
    sendPage(
      ctx,
      200,
      signUpDonePage({
        email: email.trim(),
        emailConfigured: onboarding.emailConfigured,
        signIn: signInFrom(ctx.request.URL.searchParams),
      }),
    );
  });

  // --- confirm an address ----------------------------------------------------------------
  function invalid(ctx: Context, error: AppError = new InvalidLink()) {
    sendPage(ctx, error.status, invalidLinkPage(error.message));
  }

  // A confirmation link (a new account's address, or the new address of a change) opens a page
  // with one button; only its POST uses the link, so a mail scanner opening it spends nothing.
  function confirmLinkRoutes(link: {
    path: string;
    purpose: 'verify_email' | 'change_email';
    confirm(token: string): Promise<unknown>;
    done: [title: string, text: string];
  }) {
    router.get(link.path, async function showConfirmLink(ctx) {
      const token = queryToken(ctx);
      const email = await onboarding.peek(token, link.purpose);
      if (email === null || token === undefined) return invalid(ctx);
      sendPage(
        ctx,
        200,
        verifyEmailPage({ action: link.path, csrf: csrf.token(ctx), token, email }),
      );
    });

    router.post(link.path, async function submitConfirmLink(ctx) {
      const form = await readVerifiedForm(ctx, csrf);
      if (form === null) return;
      if (!withinLimits(ctx, [[deps.perIp, ctx.ip]]))
        return sendPage(ctx, 429, invalidLinkPage(TOO_MANY));
      try {
        await link.confirm(form.token ?? '');
      } catch (error) {
        if (error instanceof InvalidLink) return invalid(ctx, error);
        throw error;
      }
      sendPage(ctx, 200, donePage(...link.done, CONSOLE));
    });
  }

  confirmLinkRoutes({
    path: PATHS.verifyEmail,
    purpose: 'verify_email',
    confirm: (token) => onboarding.verifyEmail(token),
    done: ['Address confirmed', 'Thank you. Your account can now create API keys and use the API.'],
  });

  // --- confirm a new address (self-service change of e-mail) ------------------------------
  confirmLinkRoutes({
    path: PATHS.confirmEmail,
    purpose: 'change_email',
    confirm: (token) => deps.selfService.confirmEmailChange(token),
    done: [
      'Address changed',
      'Thank you. Your account now uses this address: sign in with it from now on.',
    ],
  });

  // --- forgot password ---------------------------------------------------------------------
  function notConfigured(ctx: Context) {
    sendPage(ctx, 503, emailNotConfiguredPage('password reset'));
  }

  router.get(PATHS.forgotPassword, async function showForgotPassword(ctx) {
    if (!onboarding.emailConfigured) return notConfigured(ctx);
    sendPage(
      ctx,
      200,
      forgotPasswordPage({
        action: PATHS.forgotPassword,
        csrf: csrf.token(ctx),
        email: '',
        error: null,
      }),
    );
  });

  router.post(PATHS.forgotPassword, async function submitForgotPassword(ctx) {
    if (!onboarding.emailConfigured) return notConfigured(ctx);
    const form = await readVerifiedForm(ctx, csrf);
    if (form === null) return;
    const email = (form.email ?? '').slice(0, 320);
    if (
      !withinLimits(ctx, [
        [deps.perIp, ctx.ip],
        [deps.perEmail, normalized(email)],
      ])
    ) {
      return sendPage(
        ctx,
        429,
        forgotPasswordPage({
          action: PATHS.forgotPassword,
          csrf: csrf.token(ctx),
          email,
          error: TOO_MANY,
        }),
      );
    }
    try {
      await onboarding.requestPasswordReset(email);
    } catch (error) {
      if (error instanceof EmailNotConfigured) return notConfigured(ctx);
      throw error;
    }
    sendPage(ctx, 200, resetRequestedPage(email.trim(), RESET_TTL_MINUTES));
  });

  // --- choose a new password ---------------------------------------------------------------
  async function renderReset(ctx: Context, status: number, token: string, error: string | null) {
    const email = await onboarding.peek(token, 'reset_password');
    if (email === null) return invalid(ctx);
    sendPage(
      ctx,
      status,
      resetPasswordPage({
        action: PATHS.resetPassword,
        csrf: csrf.token(ctx),
        token,
        email,
        error,
      }),
    );
  }

  router.get(PATHS.resetPassword, async function showResetPassword(ctx) {
    await renderReset(ctx, 200, queryToken(ctx) ?? '', null);
  });

  router.post(PATHS.resetPassword, async function submitResetPassword(ctx) {
    const form = await readVerifiedForm(ctx, csrf);
    if (form === null) return;
    const token = form.token ?? '';
    if (!withinLimits(ctx, [[deps.perIp, ctx.ip]]))
      return sendPage(ctx, 429, invalidLinkPage(TOO_MANY));
    if ((form.password ?? '') !== (form.password_confirm ?? '')) {
      return renderReset(ctx, 400, token, MISMATCH);
    }
    try {
      await onboarding.resetPassword(token, form.password ?? '');
    } catch (error) {
      if (error instanceof InvalidLink) return invalid(ctx, error);
      if (error instanceof InvalidRequest) return renderReset(ctx, 400, token, error.message);
      throw error;
    }
    sendPage(
      ctx,
      200,
      donePage(
        'Password changed',
        'Sign in with your new password. Every other sign-in session has ended.',
        CONSOLE,
      ),
    );
  });

  // --- accept an invitation ----------------------------------------------------------------
  async function renderInvitation(
    ctx: Context,
    status: number,
    token: string,
    name: string,
    error: string | null,
  ) {
    const email = await onboarding.peek(token, 'invitation');
    if (email === null) return invalid(ctx);
    sendPage(
      ctx,
      status,
      invitationPage({
        action: PATHS.invitation,
        csrf: csrf.token(ctx),
        token,
        email,
        name,
        error,
      }),
    );
  }

  router.get(PATHS.invitation, async function showInvitation(ctx) {
    await renderInvitation(ctx, 200, queryToken(ctx) ?? '', '', null);
  });

  router.post(PATHS.invitation, async function acceptInvitation(ctx) {
    const form = await readVerifiedForm(ctx, csrf);
    if (form === null) return;
    const token = form.token ?? '';
    const name = (form.name ?? '').slice(0, 200);
    if (!withinLimits(ctx, [[deps.perIp, ctx.ip]]))
      return sendPage(ctx, 429, invalidLinkPage(TOO_MANY));
    if ((form.password ?? '') !== (form.password_confirm ?? '')) {
      return renderInvitation(ctx, 400, token, name, MISMATCH);
    }
    try {
      await onboarding.acceptInvitation(token, {
        password: form.password ?? '',
        name: name === '' ? null : name,
      });
    } catch (error) {
      if (error instanceof InvalidLink || error instanceof Conflict) return invalid(ctx, error);
      if (error instanceof InvalidRequest) {
        return renderInvitation(ctx, 400, token, name, error.message);
      }
      throw error;
    }
    sendPage(
      ctx,
      200,
      donePage('Account created', 'Your account is ready. Sign in with your password.', CONSOLE),
    );
  });
}

// --- POST /v1/invitations ------------------------------------------------------------------

const createInvitationBody = z.strictObject({
  email: z.string().min(3).max(320),
  /** false: make the link only (the operator hands it over); default true when e-mail works. */
  send_email: z.boolean().optional(),
});

const invitationSchema = z.strictObject({
  email: z.string(),
  expires_at: z.string(),
  email_sent: z.boolean(),
  /** Only when no e-mail was sent: the link then travels through the operator. */
  link: z.string().nullable(),
});

export function invitationRoutes(
  router: Router,
  { onboarding }: { onboarding: OnboardingService },
) {
  const access: Access = {
    kinds: ['operator', 'account'],
    note: 'An account holder only with SIGNUP_OWNER_INVITATIONS=true, SIGNUP_POLICY=invite and a confirmed address (else 403 InvitationsNotAllowed); by e-mail only (no link in the answer), at most OWNER_INVITATIONS_PER_ACCOUNT_PER_DAY a day (429).',
  };
  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/invitations',
      body: createInvitationBody,
      response: invitationSchema,
      status: 201,
      access,
    },
    async ({ body, ctx }) => {
      ctx.set('Cache-Control', 'no-store');
      const { principal, requestId } = ctx.state as AuthState;
      const actor = { id: principal.keyId ?? principal.accountId, requestId };
      let invitation;
      if (principalKind(principal) === 'operator') {
        invitation = await onboarding.invite(body.email, actor, { send: body.send_email ?? true });
      } else {
        if (body.send_email === false) {
          throw new InvalidRequest(
            'send_email: an account holder’s invitation always goes by e-mail',
          );
        }
        invitation = await onboarding.inviteAsOwner(body.email, {
          accountId: principal.accountId,
          actor,
        });
      }
      return {
        email: invitation.email,
        expires_at: invitation.expiresAt.toISOString(),
        email_sent: invitation.emailSent,
        link: invitation.link,
      };
    },
  );
}

// --- GET /v1/account, POST /v1/account/verification-email ------------------------------------

/**
 * The caller's own account (the console's "get started" page reads whether the address is
 * confirmed), and a new confirmation link when the first one went missing.
 */
export function accountStatusRoutes(
  router: Router,
  deps: { onboarding: OnboardingService; accounts: AccountsService; perEmail: RateLimiter },
) {
  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/account',
      response: accountSchema,
      access: { kinds: ['operator', 'account'], note: 'Always the caller’s own account.' },
    },
    async ({ ctx }) => {
      const { principal } = ctx.state as AuthState;
      const account = await deps.accounts.get(principal.accountId);
      if (account === null) throw new NotFound('No such account');
      return toAccountJson(account);
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/account/verification-email',
      response: z.strictObject({ email: z.string() }),
      status: 202,
      access: {
        kinds: ['account'],
        note: 'Always the caller’s own address; 409 AlreadyVerified once confirmed; EMAILS_PER_ADDRESS_PER_HOUR applies.',
      },
    },
    async ({ ctx }) => {
      const { principal, requestId } = ctx.state as AuthState;
      const wait = deps.perEmail.hit(`verify:${principal.accountId}`);
      if (wait > 0) {
        ctx.set('Retry-After', String(wait));
        throw new TooManyRequests('Too many confirmation e-mails; try again later');
      }
      return deps.onboarding.resendVerification(principal.accountId, {
        id: principal.keyId ?? principal.accountId,
        requestId,
      });
    },
  );
}
