// The second step of a sign-in (issue #18 item 4). Whatever proved the first factor — a
// password (interactions.ts), an upstream provider (amr `fed`), a passkey alone — ends in
// `completeSignIn`, which either finishes the OIDC interaction with its amr/acr or sends the
// browser to a second-factor page inside the same interaction:
// - the account has a second factor → ask for it (TOTP code, recovery code or passkey);
// - it has none, but the app asked for the mfa acr, or it is an operator's account and
//   REQUIRE_MFA_FOR_ADMINS is on → set up an authenticator app first.
// No login result (and so no token) exists until that is done. What the first step proved is
// kept server-side per interaction (second_factor_states), never in the browser.
import { readFileSync } from 'node:fs';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import QRCode from 'qrcode';
import { createCsrf } from '../platform/csrf.ts';
import { TooManyRequests } from '../platform/errors.ts';
import type { RequestState, Router } from '../platform/http.ts';
import { readVerifiedForm, sendPage } from './page-forms.ts';
import { errorPage } from './pages.ts';
import { STEP_UP_REASON } from './provider.ts';
import {
  PASSKEY_SCRIPT_PATH,
  enrolPage,
  passkeySignInPage,
  recoveryCodesPage,
  secondFactorPage,
} from './second-factor-pages.ts';
import { ACR_MFA, WrongCode, claimsFor, isMultiFactor } from './second-factor.ts';
import type { Amr, PendingSignIn, SecondFactors } from './second-factor.ts';
import type { AccountsService } from './service.ts';

type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>;

// The interaction pages' CSRF cookie (interactions.ts): one token for every form of a sign-in.
const CSRF_COOKIE = 'tollhouse_csrf';
const WRONG_CODE = 'That code is not right, or it was already used.';
const WRONG_PASSKEY = 'That passkey could not be verified. Try again.';

export interface SignInFlow {
  /**
   * Finishes the interaction for `accountId` signed in with `amr`, or sends the browser to the
   * second-factor (or set-up) page. The account must have been authenticated by the caller.
   */
  completeSignIn(
    ctx: Context,
    provider: Provider,
    interaction: Interaction,
    signedIn: { accountId: string; amr: Amr[] },
  ): Promise<void>;
  /** For a login prompt over an existing session (step-up): true when it answered. */
  stepUp(ctx: Context, provider: Provider, interaction: Interaction): Promise<boolean>;
  routes(router: Router): void;
}

export interface SignInFlowDeps {
  provider: () => Provider;
  factors: SecondFactors;
  accounts: AccountsService;
  requireMfaForAdmins: boolean;
  secureCookies: boolean;
}

export function createSignInFlow(deps: SignInFlowDeps): SignInFlow {
  const { factors, accounts } = deps;
  const forms = createCsrf({
    cookie: CSRF_COOKIE,
    path: '/interaction',
    secure: deps.secureCookies,
  });
  const script = readFileSync(new URL('./static/passkey.js', import.meta.url));

  async function details(ctx: Context, provider: Provider): Promise<Interaction | null> {
    try {
      const interaction = await provider.interactionDetails(ctx.req, ctx.res);
      if (interaction.uid !== ctx.params.uid || interaction.prompt.name !== 'login') return null;
      return interaction;
    } catch {
      return null;
    }
  }

  const expired = (ctx: Context) =>
    sendPage(
      ctx,
      400,
      errorPage(
        'This sign-in request has expired',
        'Sign-in links work once and for an hour at most.',
      ),
    );

  async function appName(provider: Provider, clientId: unknown): Promise<string> {
    const client = typeof clientId === 'string' ? await provider.Client.find(clientId) : undefined;
    return client?.clientName ?? 'the app';
  }

  function wantsMfa(interaction: Interaction): boolean {
    return String(interaction.params.acr_values ?? '')
      .split(' ')
      .includes(ACR_MFA);
  }

  async function finish(ctx: Context, provider: Provider, uid: string, signedIn: PendingSignIn) {
    const { amr, acr } = claimsFor(signedIn.amr);
    await factors.clearPending(uid);
    const returnTo = await provider.interactionResult(
      ctx.req,
      ctx.res,
      { login: { accountId: signedIn.accountId, amr, acr } },
      { mergeWithLastSubmission: false },
    );
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(returnTo);
  }

  async function completeSignIn(
    ctx: Context,
    provider: Provider,
    interaction: Interaction,
    signedIn: { accountId: string; amr: Amr[] },
  ): Promise<void> {
    const account = await accounts.get(signedIn.accountId);
    if (account === null || account.status !== 'active') {
      return sendPage(ctx, 403, errorPage('This account cannot sign in', ''));
    }
    if (!isMultiFactor(signedIn.amr)) {
      const hasFactor = await factors.hasSecondFactor(account.id);
      const mustEnrol = wantsMfa(interaction) || (deps.requireMfaForAdmins && account.isAdmin);
      if (hasFactor || mustEnrol) {
        await factors.setPending(interaction.uid, signedIn);
        ctx.set('Cache-Control', 'no-store');
        ctx.status = 303;
        ctx.redirect(`/interaction/${interaction.uid}/${hasFactor ? 'second-factor' : 'enrol'}`);
        return;
      }
    }
    await finish(ctx, provider, interaction.uid, signedIn);
  }

  /** The pending sign-in of this interaction, with the interaction; null answers "expired". */
  async function pendingOf(ctx: Context) {
    const provider = deps.provider();
    const interaction = await details(ctx, provider);
    if (interaction === null) return null;
    const pending = await factors.pending(interaction.uid);
    if (pending === null) return null;
    return { provider, interaction, pending };
  }

  async function renderSecondFactor(
    ctx: Context,
    state: { provider: Provider; interaction: Interaction; pending: PendingSignIn },
    status: number,
    error: string | null,
  ) {
    const { interaction, pending } = state;
    const factorState = await factors.status(pending.accountId);
    const passkeyOptions =
      factorState.passkeys.length === 0
        ? null
        : await factors.passkeySignInOptions(interaction.uid, pending.accountId);
    sendPage(
      ctx,
      status,
      secondFactorPage({
        base: `/interaction/${interaction.uid}/second-factor`,
        csrf: forms.token(ctx),
        appName: await appName(state.provider, interaction.params.client_id),
        error,
        totp: factorState.totp === 'on',
        recoveryCodes: factorState.recoveryCodesLeft > 0,
        passkeyOptions,
      }),
    );
  }

  async function renderEnrol(
    ctx: Context,
    state: { interaction: Interaction; pending: PendingSignIn },
    status: number,
    error: string | null,
  ) {
    const account = await accounts.get(state.pending.accountId);
    if (account === null) return expired(ctx);
    const setup = await factors.totpSetup(
      { accountId: account.id, actor: account.id, requestId: requestId(ctx) },
      account.email,
    );
    const svg = await QRCode.toString(setup.uri, { type: 'svg', margin: 1 });
    sendPage(
      ctx,
      status,
      enrolPage({
        action: `/interaction/${state.interaction.uid}/enrol`,
        csrf: forms.token(ctx),
        why: wantsMfa(state.interaction) ? 'requested' : 'required',
        secret: setup.secret,
        uri: setup.uri,
        qrDataUrl: `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}`,
        error,
      }),
    );
  }

  /** Runs a code check; a rate limit is answered on the page instead of as JSON. */
  async function limited<T>(ctx: Context, work: () => Promise<T>): Promise<T | 'limited'> {
    try {
      return await work();
    } catch (error) {
      if (!(error instanceof TooManyRequests)) throw error;
      const wait = error.headers?.['Retry-After'];
      if (wait !== undefined) ctx.set('Retry-After', wait);
      return 'limited';
    }
  }

  const TOO_MANY = 'Too many attempts. Wait a minute, then try again.';

  /**
   * Set-up is for an account without a factor: one that has a factor proves it instead (a
   * password alone must not add a second authenticator app over the first).
   */
  async function hasFactorAlready(
    ctx: Context,
    state: { interaction: Interaction; pending: PendingSignIn },
  ) {
    if (
      isMultiFactor(state.pending.amr) ||
      !(await factors.hasSecondFactor(state.pending.accountId))
    ) {
      return false;
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(`/interaction/${state.interaction.uid}/second-factor`);
    return true;
  }

  return {
    completeSignIn,

    async stepUp(ctx, provider, interaction) {
      const accountId = interaction.session?.accountId;
      if (accountId === undefined || !interaction.prompt.reasons.includes(STEP_UP_REASON)) {
        return false;
      }
      const amr = (interaction.session?.amr ?? ['pwd']) as Amr[];
      // The session's factors stand; a second one is asked for (or set up) on top of them.
      await completeSignIn(ctx, provider, interaction, {
        accountId,
        amr: amr.filter((m) => m !== 'mfa'),
      });
      return true;
    },

    routes(router) {
      router.get(PASSKEY_SCRIPT_PATH, async function passkeyScript(ctx) {
        ctx.set('Cache-Control', 'no-cache');
        ctx.set('X-Content-Type-Options', 'nosniff');
        ctx.type = 'text/javascript; charset=utf-8';
        ctx.body = script;
      });

      router.get('/interaction/:uid/second-factor', async function showSecondFactor(ctx) {
        const state = await pendingOf(ctx);
        if (state === null) return expired(ctx);
        await renderSecondFactor(ctx, state, 200, null);
      });

      // A typed code (authenticator app or recovery code): both add `otp`, both are limited
      // and answered alike when wrong.
      function codeRoute(
        path: string,
        check: (ctx: Context, accountId: string, code: string) => Promise<boolean>,
      ) {
        router.post(path, async function submitCode(ctx) {
          const state = await pendingOf(ctx);
          if (state === null) return expired(ctx);
          const form = await readVerifiedForm(ctx, forms);
          if (form === null) return;
          const code = (form.code ?? '').slice(0, 32);
          const ok = await limited(ctx, () => check(ctx, state.pending.accountId, code));
          if (ok === 'limited') return renderSecondFactor(ctx, state, 429, TOO_MANY);
          if (!ok) return renderSecondFactor(ctx, state, 401, WRONG_CODE);
          await finish(ctx, state.provider, state.interaction.uid, {
            accountId: state.pending.accountId,
            amr: [...state.pending.amr, 'otp'],
          });
        });
      }
      codeRoute('/interaction/:uid/second-factor/totp', (_ctx, accountId, code) =>
        factors.verifyTotp(accountId, code),
      );
      codeRoute('/interaction/:uid/second-factor/recovery', async (ctx, accountId, code) => {
        const used = await factors.useRecoveryCode(accountId, code, requestId(ctx));
        if (used) (ctx.state as RequestState).log.info('signed in with a recovery code');
        return used;
      });

      router.post('/interaction/:uid/second-factor/passkey', async function submitPasskey(ctx) {
        const state = await pendingOf(ctx);
        if (state === null) return expired(ctx);
        const form = await readVerifiedForm(ctx, forms);
        if (form === null) return;
        const response = parseJson(form.response);
        const proved =
          response === null
            ? null
            : await factors.verifyPasskeySignIn(
                state.interaction.uid,
                response as never,
                state.pending.accountId,
              );
        if (proved === null) return renderSecondFactor(ctx, state, 401, WRONG_PASSKEY);
        await finish(ctx, state.provider, state.interaction.uid, {
          accountId: state.pending.accountId,
          amr: [...state.pending.amr, ...proved.amr],
        });
      });

      router.get('/interaction/:uid/enrol', async function showEnrol(ctx) {
        const state = await pendingOf(ctx);
        if (state === null) return expired(ctx);
        if (await hasFactorAlready(ctx, state)) return;
        await renderEnrol(ctx, state, 200, null);
      });

      router.post('/interaction/:uid/enrol', async function submitEnrol(ctx) {
        const state = await pendingOf(ctx);
        if (state === null) return expired(ctx);
        const form = await readVerifiedForm(ctx, forms);
        if (form === null) return;
        if (await hasFactorAlready(ctx, state)) return;
        const code = (form.code ?? '').slice(0, 32);
        const caller = {
          accountId: state.pending.accountId,
          actor: state.pending.accountId,
          requestId: requestId(ctx),
        };
        let codes: string[];
        try {
          codes = (await factors.confirmTotp(caller, code)).recoveryCodes;
        } catch (error) {
          if (error instanceof WrongCode) return renderEnrol(ctx, state, 401, WRONG_CODE);
          if (error instanceof TooManyRequests) return renderEnrol(ctx, state, 429, TOO_MANY);
          throw error;
        }
        await factors.setPending(state.interaction.uid, {
          accountId: state.pending.accountId,
          amr: [...state.pending.amr, 'otp'],
        });
        sendPage(
          ctx,
          200,
          recoveryCodesPage({
            action: `/interaction/${state.interaction.uid}/enrol/done`,
            csrf: forms.token(ctx),
            codes,
          }),
        );
      });

      router.post('/interaction/:uid/enrol/done', async function finishEnrol(ctx) {
        const state = await pendingOf(ctx);
        if (state === null) return expired(ctx);
        const form = await readVerifiedForm(ctx, forms);
        if (form === null) return;
        if (!isMultiFactor(state.pending.amr)) {
          ctx.status = 303;
          ctx.redirect(`/interaction/${state.interaction.uid}/enrol`);
          return;
        }
        await finish(ctx, state.provider, state.interaction.uid, state.pending);
      });

      // Passwordless: any discoverable passkey of an account, with user verification.
      const showPasskeySignIn = async (
        ctx: Context,
        provider: Provider,
        interaction: Interaction,
        status: number,
        error: string | null,
      ) =>
        sendPage(
          ctx,
          status,
          passkeySignInPage({
            action: `/interaction/${interaction.uid}/passkey/verify`,
            csrf: forms.token(ctx),
            appName: await appName(provider, interaction.params.client_id),
            options: await factors.passkeySignInOptions(interaction.uid, null),
            error,
            backTo: `/interaction/${interaction.uid}`,
          }),
        );

      router.post('/interaction/:uid/passkey', async function startPasskeySignIn(ctx) {
        const provider = deps.provider();
        const interaction = await details(ctx, provider);
        if (interaction === null) return expired(ctx);
        const form = await readVerifiedForm(ctx, forms);
        if (form === null) return;
        await showPasskeySignIn(ctx, provider, interaction, 200, null);
      });

      router.post('/interaction/:uid/passkey/verify', async function submitPasskeySignIn(ctx) {
        const provider = deps.provider();
        const interaction = await details(ctx, provider);
        if (interaction === null) return expired(ctx);
        const form = await readVerifiedForm(ctx, forms);
        if (form === null) return;
        const response = parseJson(form.response);
        const proved =
          response === null
            ? null
            : await factors.verifyPasskeySignIn(interaction.uid, response as never, null);
        if (proved === null) {
          (ctx.state as RequestState).log.info('passkey sign-in refused');
          return showPasskeySignIn(ctx, provider, interaction, 401, WRONG_PASSKEY);
        }
        await completeSignIn(ctx, provider, interaction, proved);
      });
    },
  };
}

function requestId(ctx: Context): string | null {
  return (ctx.state as RequestState).requestId ?? null;
}

function parseJson(value: unknown): Record<string, unknown> | null {
  if (typeof value !== 'string' || value.length === 0) return null;
  try {
    const parsed: unknown = JSON.parse(value);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}
