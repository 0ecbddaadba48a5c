// /v1/apps and /v1/accounts: OIDC apps (self-service for an account's own apps; `admin` manages
// any account's) and the operator's view of accounts (admin scope).
import { hasScope } from '../platform/auth.ts';
import { InvalidRequest, NotFound } from '../platform/errors.ts';
import type { AuthState } from '../platform/auth.ts';
import type { Access, IdRule } from '../platform/authz.ts';
import { defineRoute } from '../platform/http.ts';
import type { Router } from '../platform/http.ts';
import type { AccountsService, AppCaller, AppsService } from './service.ts';
import {
  accountId,
  accountList,
  accountSchema,
  decodeAccountCursor,
  encodeAccountCursor,
  listAccountsQuery,
  toAccountJson,
  updateAccountBody,
  appId,
  appList,
  listAppsQuery,
  appWithSecret,
  createAppBody,
  rotateSecretBody,
  toAppJson,
  updateAppBody,
  appSchema,
  appUserBody,
  appUserList,
  appUserParams,
  appUserSchema,
  toAppUserJson,
} from './schemas.ts';

// A rotation keeps the old secret for a day unless told otherwise: long enough for a rolling
// deploy of the app's backend, short enough that a leaked secret does not linger.
const DEFAULT_GRACE_SECONDS = 24 * 3600;

export function appRoutes(
  router: Router,
  { apps, appOwner }: { apps: AppsService; appOwner: IdRule['find'] },
): void {
  // The account's own credentials, its apps' backends (or an operator), limited by the service
  // to the account's own apps and the credential's scopes. A token acting for an app's end user
  // speaks for that user, not for the account; a token made from a key would leave behind apps
  // that outlive it; a browser key is public: none of them manage apps.
  const ownAccount: IdRule = { rule: 'own_account', names: 'account' };
  const ownApp: IdRule = { rule: 'own_account', names: 'app', find: appOwner };
  const own = (ids?: Access['ids']): Access => ({
    kinds: ['operator', 'account', 'app_client'],
    ...(ids === undefined ? {} : { ids }),
  });
  const actorOf = (ctx: { state: unknown }) => {
    const state = ctx.state as AuthState;
    return { id: state.principal.keyId ?? state.principal.accountId, requestId: state.requestId };
  };
  const callerOf = (ctx: { state: unknown }): AppCaller => {
    const { principal } = ctx.state as AuthState;
    return hasScope(principal, 'admin')
      ? null
      : { accountId: principal.accountId, scopes: principal.scopes };
  };

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/apps',
      body: createAppBody,
      response: appWithSecret,
      status: 201,
      access: own({ 'body.owner_account_id': ownAccount }),
    },
    async ({ body, ctx }) => {
      ctx.set('Cache-Control', 'no-store');
      const { app, clientSecret } = await apps.create(
        {
          name: body.name,
          kind: body.kind,
          ownerAccountId: body.owner_account_id ?? (ctx.state as AuthState).principal.accountId,
          redirectUris: body.redirect_uris,
          postLogoutRedirectUris: body.post_logout_redirect_uris,
          allowedOrigins: body.allowed_origins,
          scopes: body.scopes,
          grantTypes: body.grant_types,
        },
        actorOf(ctx),
        callerOf(ctx),
      );
      return { ...toAppJson(app), client_secret: clientSecret };
    },
  );

  defineRoute(
    router,
    { method: 'get', path: '/v1/apps', query: listAppsQuery, response: appList, access: own() },
    async ({ query, ctx }) => {
      const page = await apps.list(callerOf(ctx)?.accountId ?? null, query);
      return { apps: page.items.map(toAppJson), next_cursor: page.nextCursor };
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/apps/:id',
      params: appId,
      response: appSchema,
      access: own({ 'params.id': ownApp }),
    },
    async ({ params, ctx }) => toAppJson(await apps.get(params.id, callerOf(ctx))),
  );

  defineRoute(
    router,
    {
      method: 'patch',
      path: '/v1/apps/:id',
      params: appId,
      body: updateAppBody,
      response: appSchema,
      access: own({ 'params.id': ownApp }),
    },
    async ({ params, body, ctx }) =>
      toAppJson(
        await apps.update(
          params.id,
          {
            name: body.name,
            redirectUris: body.redirect_uris,
            postLogoutRedirectUris: body.post_logout_redirect_uris,
            allowedOrigins: body.allowed_origins,
            scopes: body.scopes,
            grantTypes: body.grant_types,
            status: body.status,
          },
          actorOf(ctx),
          callerOf(ctx),
        ),
      ),
  );

  // An app's users are managed by an admin or by the app's own backend (a client-credentials
  // token of that app, not acting for a user).
  const adminOrOwnApp: Access = {
    kinds: ['operator', 'app_client'],
    ids: { 'params.id': { rule: 'own_app', names: 'app' } },
  };

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/apps/:id/users',
      params: appId,
      response: appUserList,
      access: adminOrOwnApp,
    },
    async ({ params }) => ({ users: (await apps.listAppUsers(params.id)).map(toAppUserJson) }),
  );

  defineRoute(
    router,
    {
      method: 'put',
      path: '/v1/apps/:id/users/:external_id',
      params: appUserParams,
      response: appUserSchema,
      access: adminOrOwnApp,
    },
    async ({ params }) => {
      await apps.get(params.id);
      return toAppUserJson(await apps.ensureAppUser(params.id, params.external_id));
    },
  );

  defineRoute(
    router,
    {
      method: 'patch',
      path: '/v1/apps/:id/users/:external_id',
      params: appUserParams,
      body: appUserBody,
      response: appUserSchema,
      access: adminOrOwnApp,
    },
    async ({ params, body }) =>
      toAppUserJson(await apps.setAppUserStatus(params.id, params.external_id, body.status)),
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/apps/:id/rotate-secret',
      params: appId,
      body: rotateSecretBody,
      response: appWithSecret,
      access: own({ 'params.id': ownApp }),
    },
    async ({ params, body, ctx }) => {
      ctx.set('Cache-Control', 'no-store');
      const { app, clientSecret } = await apps.rotateSecret(
        params.id,
        body?.grace_seconds ?? DEFAULT_GRACE_SECONDS,
        actorOf(ctx),
        callerOf(ctx),
      );
      return { ...toAppJson(app), client_secret: clientSecret };
    },
  );
}

/** /v1/accounts: the operator's view of the people who sign in (admin scope). */
export function accountRoutes(router: Router, { accounts }: { accounts: AccountsService }): void {
  const admin: Access = { kinds: ['operator'], scope: 'admin' };

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/accounts',
      query: listAccountsQuery,
      response: accountList,
      access: admin,
    },
    async ({ query }) => {
      const after = query.cursor === undefined ? null : decodeAccountCursor(query.cursor);
      if (after === null && query.cursor !== undefined) {
        throw new InvalidRequest('query.cursor: not a cursor returned by this API');
      }
      const page = await accounts.list({
        search: query.q ?? null,
        status: query.status ?? null,
        limit: query.limit,
        after,
      });
      return {
        accounts: page.accounts.map(toAccountJson),
        next_cursor: page.next === null ? null : encodeAccountCursor(page.next),
      };
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/accounts/:id',
      params: accountId,
      response: accountSchema,
      access: admin,
    },
    async ({ params }) => {
      const account = await accounts.get(params.id);
      if (account === null) throw new NotFound(`No account ${params.id}`);
      return toAccountJson(account);
    },
  );

  defineRoute(
    router,
    {
      method: 'patch',
      path: '/v1/accounts/:id',
      params: accountId,
      body: updateAccountBody,
      response: accountSchema,
      access: admin,
    },
    async ({ params, body, ctx }) => {
      const { principal, requestId } = ctx.state as AuthState;
      return toAccountJson(
        await accounts.update(
          params.id,
          { name: body.name, email: body.email, status: body.status },
          {
            id: principal.keyId ?? principal.accountId,
            requestId,
            accountId: principal.accountId,
          },
        ),
      );
    },
  );
}
