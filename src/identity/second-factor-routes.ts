// /v1/account/second-factor… and /v1/account/passkeys…: the holder sets up and manages its own
// second factors (issue #18 item 4), as the console's "Your account" page does. Always the
// caller's own account, and like the rest of /v1/account only an account credential may call
// (an operator's admin-scoped session is refused): an operator sets up its authenticator app
// on the sign-in's set-up page (REQUIRE_MFA_FOR_ADMINS, or an app asking for the mfa acr).
// WebAuthn options and answers keep the W3C's JSON names (they go to and come from the
// browser's API unchanged), so their schemas are opaque objects here.
import { z } from 'zod';
import type { AuthState } from '../platform/auth.ts';
import type { Access } from '../platform/authz.ts';
import { defineRoute } from '../platform/http.ts';
import type { Router } from '../platform/http.ts';
import type { Passkey, SecondFactorCaller, SecondFactors } from './second-factor.ts';
import { WrongCode } from './second-factor.ts';
import type { AccountsService } from './service.ts';
import { NotFound } from '../platform/errors.ts';

const code = z.string().max(32);
const passkeyName = z.string().max(64);
// A WebAuthn answer is a few kilobytes at most; the body limit bounds it anyway.
const webauthnJson = z.record(z.string(), z.unknown());
const passkeyParams = z.object({ id: z.string().max(100) });

const passkeySchema = z.strictObject({
  id: z.string(),
  name: z.string(),
  device_type: z.enum(['singleDevice', 'multiDevice']),
  backed_up: z.boolean(),
  created_at: z.string(),
  last_used_at: z.string().nullable(),
});

const recoveryCodesSchema = z.strictObject({ recovery_codes: z.array(z.string()) });

function toPasskeyJson(p: Passkey): z.input<typeof passkeySchema> {
  return {
    id: p.id,
    name: p.name,
    device_type: p.deviceType,
    backed_up: p.backedUp,
    created_at: p.createdAt.toISOString(),
    last_used_at: p.lastUsedAt?.toISOString() ?? null,
  };
}

export function secondFactorRoutes(
  router: Router,
  { factors, accounts }: { factors: SecondFactors; accounts: AccountsService },
) {
  const self: Access = {
    kinds: ['account'],
    note: 'Always the caller’s own account.',
  };
  const callerOf = (ctx: { state: unknown }): SecondFactorCaller => {
    const { principal, requestId } = ctx.state as AuthState;
    return {
      accountId: principal.accountId,
      actor: principal.keyId ?? principal.accountId,
      requestId,
    };
  };

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/account/second-factor',
      response: z.strictObject({
        totp: z.enum(['off', 'pending', 'on']),
        recovery_codes_left: z.number().int(),
        passkeys: z.array(passkeySchema),
      }),
      access: self,
    },
    async ({ ctx }) => {
      const status = await factors.status(callerOf(ctx).accountId);
      return {
        totp: status.totp,
        recovery_codes_left: status.recoveryCodesLeft,
        passkeys: status.passkeys.map(toPasskeyJson),
      };
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/account/second-factor/totp',
      response: z.strictObject({ secret: z.string(), otpauth_uri: z.string() }),
      status: 201,
      access: { ...self, note: `${self.note} Replaces a secret not confirmed yet.` },
    },
    async ({ ctx }) => {
      const caller = callerOf(ctx);
      const account = await accounts.get(caller.accountId);
      if (account === null) throw new NotFound('No such account');
      const setup = await factors.beginTotp(caller, account.email);
      return { secret: setup.secret, otpauth_uri: setup.uri };
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/account/second-factor/totp/confirm',
      body: z.strictObject({ code }),
      response: recoveryCodesSchema,
      access: self,
    },
    async ({ body, ctx }) => {
      const { recoveryCodes } = await factors.confirmTotp(callerOf(ctx), body.code);
      return { recovery_codes: recoveryCodes };
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/account/second-factor/totp/remove',
      body: z.strictObject({ code }),
      response: z.strictObject({ removed: z.boolean() }),
      access: { ...self, note: `${self.note} Needs a current code from the app.` },
    },
    async ({ body, ctx }) => {
      const caller = callerOf(ctx);
      // A stolen console tab or key alone cannot take the factor away.
      if (!(await factors.verifyTotp(caller.accountId, body.code))) throw new WrongCode();
      await factors.removeTotp(caller);
      return { removed: true };
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/account/second-factor/recovery-codes',
      response: recoveryCodesSchema,
      access: { ...self, note: `${self.note} The previous codes stop working.` },
    },
    async ({ ctx }) => ({
      recovery_codes: await factors.regenerateRecoveryCodes(callerOf(ctx)),
    }),
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/account/passkeys',
      response: z.strictObject({ passkeys: z.array(passkeySchema) }),
      access: self,
    },
    async ({ ctx }) => ({
      passkeys: (await factors.listPasskeys(callerOf(ctx).accountId)).map(toPasskeyJson),
    }),
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/account/passkeys/options',
      response: z.strictObject({ options: webauthnJson }),
      access: self,
    },
    async ({ ctx }) => {
      const caller = callerOf(ctx);
      const account = await accounts.get(caller.accountId);
      if (account === null) throw new NotFound('No such account');
      const options = await factors.passkeyRegistrationOptions(account.id, account.email);
      return { options: options as unknown as Record<string, unknown> };
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/account/passkeys',
      body: z.strictObject({ name: passkeyName, response: webauthnJson }),
      response: passkeySchema,
      status: 201,
      access: self,
    },
    async ({ body, ctx }) =>
      toPasskeyJson(
        await factors.registerPasskey(callerOf(ctx), {
          name: body.name,
          response: body.response as never,
        }),
      ),
  );

  defineRoute(
    router,
    {
      method: 'patch',
      path: '/v1/account/passkeys/:id',
      params: passkeyParams,
      body: z.strictObject({ name: passkeyName }),
      response: passkeySchema,
      access: { ...self, note: 'Only the caller’s own passkeys; any other id answers 404.' },
    },
    async ({ params, body, ctx }) =>
      toPasskeyJson(await factors.renamePasskey(callerOf(ctx), params.id, body.name)),
  );

  defineRoute(
    router,
    {
      method: 'delete',
      path: '/v1/account/passkeys/:id',
      params: passkeyParams,
      response: z.undefined(),
      status: 204,
      access: { ...self, note: 'Only the caller’s own passkeys; any other id answers 404.' },
    },
    async ({ params, ctx }) => {
      await factors.removePasskey(callerOf(ctx), params.id);
      return undefined;
    },
  );
}
