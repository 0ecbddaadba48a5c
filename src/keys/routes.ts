// HTTP: /v1/keys (an account manages its own keys; `admin` manages any account's) and
// /v1/auth/verify (forward-auth for nginx auth_request, Traefik ForwardAuth, Envoy ext_authz).
import type { Authenticator, AuthState, Principal, Scope } from '../platform/auth.ts';
import { assertResourceAllowed, hasScope, ruleFailed } from '../platform/auth.ts';
import type { Access, IdRule } from '../platform/authz.ts';
import type { Directory } from '../platform/directory.ts';
import type { AppContext, Router } from '../platform/http.ts';
import { BadRequest } from '../platform/errors.ts';
import { defineRoute } from '../platform/http.ts';
import { hasDotSegment } from '../platform/paths.ts';
import {
  createKeyBody,
  issuedKey,
  keyLimitsBody,
  keyLimitsView,
  keyList,
  keyParams,
  listQuery,
  apiKeyView,
  rotateKeyBody,
  rotatedKey,
  toApiKeyView,
  toIssuedKeyView,
  toKeyListView,
  toKeyPatch,
  toNewKeyInput,
  toRotateInput,
  toRotatedKeyView,
  toVerifiedPrincipalView,
  updateKeyBody,
  verifiedPrincipal,
  verifyQuery,
} from './schemas.ts';
import type { KeyService } from './service.ts';
import { callerFromPrincipal } from './service.ts';

export interface KeyRoutesDeps {
  keyService: KeyService;
  authenticator: Authenticator;
  /** Whose app an `app_id` is (identity's, through the platform port). */
  directory: Pick<Directory, 'appOwner'>;
}

// The request URI a proxy forwards is split into at most this many path segments.
const MAX_URI_SEGMENTS = 16;

function caller(ctx: AppContext) {
  return callerFromPrincipal((ctx.state as AuthState).principal, ctx.state.requestId);
}

export function keyRoutes(
  router: Router,
  { keyService, authenticator, directory }: KeyRoutesDeps,
): void {
  const ownAccount: IdRule = { rule: 'own_account', names: 'account' };
  const ownKey: IdRule = {
    rule: 'own_account',
    names: 'API key',
    find: (id) => keyService.owner(id),
  };
  const ownApp: IdRule = {
    rule: 'own_account',
    names: 'app',
    find: (id) => directory.appOwner(id),
  };
  // Keys outlive the credential that made them, so only credentials that are themselves the
  // account's (its keys and its own tokens) manage them: not an app, an app's end user, a
  // token made from a key (its key would survive the parent's revocation) or a browser key.
  const manage = (ids: Access['ids']): Access => ({ kinds: ['operator', 'account'], ids });

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/keys',
      body: createKeyBody,
      response: issuedKey,
      status: 201,
      access: manage({ 'body.account_id': ownAccount, 'body.app_id': ownApp }),
    },
    async function createKey({ body, ctx }) {
      ctx.set('Cache-Control', 'no-store');
      return toIssuedKeyView(await keyService.create(caller(ctx), toNewKeyInput(body)));
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/keys',
      query: listQuery,
      response: keyList,
      access: manage({ 'query.account_id': ownAccount }),
    },
    async function listKeys({ query, ctx }) {
      const { account_id, ...page } = query;
      return toKeyListView(
        await keyService.list(caller(ctx), {
          ...page,
          ...(account_id === undefined ? {} : { accountId: account_id }),
        }),
      );
    },
  );

  defineRoute(
    router,
    {
      method: 'put',
      path: '/v1/keys/:id/limits',
      params: keyParams,
      body: keyLimitsBody,
      response: keyLimitsView,
      // Operators only: limits are what a plan sells; a customer reads them through
      // GET /v1/keys/{id}/limits (the front door's effective view).
      access: { kinds: ['operator'], scope: 'admin' },
    },
    async function setKeyLimits({ params, body, ctx }) {
      const set = await keyService.setLimits(caller(ctx), params.id, body);
      return { key_id: params.id, account_id: set.accountId, override: set.override };
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/keys/:id',
      params: keyParams,
      response: apiKeyView,
      access: manage({ 'params.id': ownKey }),
    },
    async function showKey({ params, ctx }) {
      return toApiKeyView(await keyService.show(caller(ctx), params.id));
    },
  );

  defineRoute(
    router,
    {
      method: 'patch',
      path: '/v1/keys/:id',
      params: keyParams,
      body: updateKeyBody,
      response: apiKeyView,
      access: manage({ 'params.id': ownKey }),
    },
    async function updateKey({ params, body, ctx }) {
      return toApiKeyView(await keyService.update(caller(ctx), params.id, toKeyPatch(body)));
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/keys/:id/revoke',
      params: keyParams,
      response: apiKeyView,
      access: manage({ 'params.id': ownKey }),
    },
    async function revokeKey({ params, ctx }) {
      return toApiKeyView(await keyService.revoke(caller(ctx), params.id));
    },
  );

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/keys/:id/rotate',
      params: keyParams,
      body: rotateKeyBody.optional(),
      response: rotatedKey,
      status: 201,
      access: manage({ 'params.id': ownKey }),
    },
    async function rotateKey({ params, body, ctx }) {
      ctx.set('Cache-Control', 'no-store');
      const input = toRotateInput(body ?? rotateKeyBody.parse({}));
      return toRotatedKeyView(await keyService.rotate(caller(ctx), params.id, input));
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/auth/verify',
      query: verifyQuery,
      response: verifiedPrincipal,
      access: {
        kinds: 'anyone',
        note: 'forward-auth: checks the forwarded credential itself (scope and resources asked for)',
      },
    },
    async function forwardAuth({ query, ctx }) {
      ctx.set('Cache-Control', 'no-store');
      // The proxy's original URI is what it will forward: a dot-segment there could be
      // authorized under one prefix and served under another (platform/paths.ts).
      const uri = ctx.get('x-forwarded-uri') || ctx.get('x-original-uri');
      if (hasDotSegment(uri.split(/[?#]/, 1)[0] ?? '')) {
        throw new BadRequest(
          'The forwarded URI must not contain "." or ".." segments or percent-encoded dots or slashes',
        );
      }
      const principal = await authenticator.authenticate(ctx.get('authorization') || undefined, {
        origin: ctx.get('origin') || null,
        log: ctx.state.log,
      });
      requireScopes(principal, query.scope ?? ['gateway']);
      if (principal.allowedResources !== null) {
        assertResourceAllowed(principal, query.resource ?? requestedResources(ctx));
      }
      ctx.set('X-Tollhouse-Account', principal.accountId);
      ctx.set('X-Tollhouse-App', principal.appId ?? '');
      ctx.set('X-Tollhouse-Key', principal.keyId ?? '');
      ctx.set('X-Tollhouse-Scopes', principal.scopes.join(' '));
      return toVerifiedPrincipalView(principal);
    },
  );
}

function requireScopes(principal: Principal, scopes: readonly Scope[]) {
  const missing = scopes.filter((s) => !hasScope(principal, s));
  if (missing.length > 0) {
    throw ruleFailed('scope', `This credential lacks the ${missing.join(', ')} scope`);
  }
}

/**
 * What the proxied request targets, when the proxy did not say with `?resource=`:
 * `X-Tollhouse-Resource` (comma-separated), else every path prefix of the original URI
 * (`X-Forwarded-Uri` from Traefik, `X-Original-URI` as nginx examples set it):
 * `/live/video-to-video/s1/start` → `live`, `live/video-to-video`, `live/video-to-video/s1`, …
 */
function requestedResources(ctx: AppContext): string[] {
  const explicit = ctx.get('x-tollhouse-resource');
  if (explicit !== '') {
    return explicit
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .slice(0, MAX_URI_SEGMENTS);
  }
  const uri = ctx.get('x-forwarded-uri') || ctx.get('x-original-uri');
  if (uri === '') return [];
  const path = uri.split(/[?#]/, 1)[0] ?? '';
  const segments = path.split('/').filter(Boolean).slice(0, MAX_URI_SEGMENTS);
  return segments.map((_, i) =>
    segments
      .slice(0, i + 1)
      .map(safeDecode)
      .join('/'),
  );
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
