// /v1/account/…: the account holder's own self-service (issue #18 item 7) — password, e-mail
// address, sign-ins, deletion. Always the caller's own account (there is no id to name
// another): operators act on other accounts through /v1/accounts. Only an account credential
// (its backend key, or the token it obtained for itself) may call: a token an app holds for an
// end user, a token made from a key, and a public browser key do not speak for the holder.
import { z } from 'zod';
import type { AuthState } from '../platform/auth.ts';
import type { Access } from '../platform/authz.ts';
import { defineRoute } from '../platform/http.ts';
import type { Router } from '../platform/http.ts';
import type { AccountSession, SelfService, SelfServiceCaller } from './self-service.ts';

// As checkPassword's bound (service.ts): longer is not a password this service set.
const password = z.string().min(1).max(1024);

const changePasswordBody = z.strictObject({
  current_password: password,
  new_password: z.string().max(1024),
});
const changeEmailBody = z.strictObject({
  current_password: password,
  // checkEmail (service.ts) applies the address rule; 320 bounds what is read.
  email: z.string().max(320),
});
const deleteBody = z.strictObject({ current_password: password });
const sessionParams = z.object({ id: z.string().max(100) });

const sessionSchema = z.strictObject({
  id: z.string(),
  kind: z.enum(['browser_session', 'refresh_grant']),
  clients: z.array(z.strictObject({ client_id: z.string(), name: z.string().nullable() })),
  created_at: z.string().nullable(),
  last_used_at: z.string().nullable(),
  expires_at: z.string().nullable(),
});

function toSessionJson(session: AccountSession): z.input<typeof sessionSchema> {
  return {
    id: session.id,
    kind: session.kind,
    clients: session.clients.map((c) => ({ client_id: c.clientId, name: c.name })),
    created_at: session.createdAt?.toISOString() ?? null,
    last_used_at: session.lastUsedAt?.toISOString() ?? null,
    expires_at: session.expiresAt?.toISOString() ?? null,
  };
}

export function selfServiceRoutes(router: Router, { selfService }: { selfService: SelfService }) {
  const self: Access = {
    kinds: ['account'],
    note: 'Always the caller’s own account; password, e-mail and deletion need current_password.',
  };
  const callerOf = (ctx: { state: unknown }): SelfServiceCaller => {
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
      method: 'post',
      path: '/v1/account/password',
      body: changePasswordBody,
      response: z.strictObject({ sessions_ended: z.number().int() }),
      access: self,
    },
    async ({ body, ctx }) => {
      const { sessionsEnded } = await selfService.changePassword(callerOf(ctx), {
        currentPassword: body.current_password,
        newPassword: body.new_password,
      });
      return { sessions_ended: sessionsEnded };
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/account/email',
      body: changeEmailBody,
      response: z.strictObject({ pending_email: z.string(), expires_at: z.string() }),
      status: 202,
      access: self,
    },
    async ({ body, ctx }) => {
      const pending = await selfService.requestEmailChange(callerOf(ctx), {
        currentPassword: body.current_password,
        email: body.email,
      });
      return { pending_email: pending.email, expires_at: pending.expiresAt.toISOString() };
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/account/sessions',
      response: z.strictObject({ sessions: z.array(sessionSchema) }),
      access: self,
    },
    async ({ ctx }) => ({
      sessions: (await selfService.listSessions(callerOf(ctx).accountId)).map(toSessionJson),
    }),
  );

  defineRoute(
    router,
    {
      method: 'delete',
      path: '/v1/account/sessions',
      response: z.strictObject({ ended: z.number().int() }),
      access: self,
    },
    async ({ ctx }) => ({ ended: await selfService.endAllSessions(callerOf(ctx)) }),
  );

  defineRoute(
    router,
    {
      method: 'delete',
      path: '/v1/account/sessions/:id',
      params: sessionParams,
      response: z.undefined(),
      status: 204,
      access: { ...self, note: 'Only the caller’s own sessions; any other id answers 404.' },
    },
    async ({ params, ctx }) => {
      await selfService.endSession(callerOf(ctx), params.id);
      return undefined;
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/account/delete',
      body: deleteBody,
      response: z.strictObject({
        keys_revoked: z.number().int(),
        apps_disabled: z.number().int(),
        sessions_ended: z.number().int(),
      }),
      access: self,
    },
    async ({ body, ctx }) => {
      const result = await selfService.deleteAccount(callerOf(ctx), {
        currentPassword: body.current_password,
      });
      return {
        keys_revoked: result.keysRevoked,
        apps_disabled: result.appsDisabled,
        sessions_ended: result.sessionsEnded,
      };
    },
  );
}
