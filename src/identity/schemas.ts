// zod shapes of the /v1/apps and /v1/accounts REST API (snake_case on the wire, like OAuth
// client metadata).
import { z } from 'zod';
import { pageQuery } from '../platform/cursor.ts';
import { SCOPES } from '../platform/auth.ts';
import { MAX_GRACE_SECONDS } from './service.ts';
import type { Account, App } from './queries.ts';

const uriList = z.array(z.string().min(1).max(2000)).max(20);
const scopeList = z.array(z.enum(SCOPES)).max(SCOPES.length);
const grantList = z.array(z.string().min(1).max(100)).max(10);

export const appId = z.object({
  id: z.string().regex(/^app_[0-9A-Za-z]{22}$/, 'expected an app id (app_…)'),
});

export const createAppBody = z.strictObject({
  name: z.string().trim().min(1).max(100),
  kind: z.enum(['public', 'web', 'machine']),
  redirect_uris: uriList.optional(),
  post_logout_redirect_uris: uriList.optional(),
  allowed_origins: uriList.optional(),
  scopes: scopeList.optional(),
  grant_types: grantList.optional(),
  /** Admins may create an app for another account; default: the caller's account. */
  owner_account_id: z
    .string()
    .regex(/^acct_[0-9A-Za-z]{22}$/)
    .optional(),
});

export const updateAppBody = z.strictObject({
  name: z.string().trim().min(1).max(100).optional(),
  redirect_uris: uriList.optional(),
  post_logout_redirect_uris: uriList.optional(),
  allowed_origins: uriList.optional(),
  scopes: scopeList.optional(),
  grant_types: grantList.optional(),
  status: z.enum(['active', 'disabled']).optional(),
});

export const rotateSecretBody = z.strictObject({
  /** How long the replaced secret keeps working (seconds, default one day). */
  grace_seconds: z.number().int().min(0).max(MAX_GRACE_SECONDS).optional(),
});

export const appSchema = z.strictObject({
  id: z.string(),
  client_id: z.string(),
  owner_account_id: z.string(),
  name: z.string(),
  kind: z.enum(['public', 'web', 'machine']),
  redirect_uris: z.array(z.string()),
  post_logout_redirect_uris: z.array(z.string()),
  allowed_origins: z.array(z.string()),
  grant_types: z.array(z.string()),
  scopes: z.array(z.string()),
  status: z.enum(['active', 'disabled']),
  token_endpoint_auth_method: z.enum(['none', 'client_secret_basic']),
  previous_secret_expires_at: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});

export const appWithSecret = appSchema.extend({ client_secret: z.string().nullable() });
// Not strict: before paging, unknown query parameters were ignored, and callers may send some.
export const listAppsQuery = z.object(pageQuery);

export const appList = z.strictObject({
  apps: z.array(appSchema),
  next_cursor: z.string().nullable(),
});

export function toAppJson(app: App): z.input<typeof appSchema> {
  return {
    id: app.id,
    client_id: app.clientId,
    owner_account_id: app.ownerAccountId,
    name: app.name,
    kind: app.kind,
    redirect_uris: app.redirectUris,
    post_logout_redirect_uris: app.postLogoutRedirectUris,
    allowed_origins: app.allowedOrigins,
    grant_types: app.grantTypes,
    scopes: app.scopes,
    status: app.status,
    token_endpoint_auth_method: app.kind === 'public' ? 'none' : 'client_secret_basic',
    previous_secret_expires_at:
      app.secretHashes.length > 1 && app.previousSecretExpiresAt !== null
        ? app.previousSecretExpiresAt.toISOString()
        : null,
    created_at: app.createdAt.toISOString(),
    updated_at: app.updatedAt.toISOString(),
  };
}

// The app's own user id: opaque to tollhouse, bounded for storage and URLs.
export const appUserParams = z.object({
  id: appId.shape.id,
  external_id: z.string().min(1).max(255),
});

export const appUserBody = z.strictObject({ status: z.enum(['active', 'disabled']) });

export const appUserSchema = z.strictObject({
  id: z.string(),
  external_id: z.string(),
  status: z.enum(['active', 'disabled']),
});

export const appUserList = z.strictObject({ users: z.array(appUserSchema) });

export function toAppUserJson(user: {
  id: string;
  externalId: string;
  status: 'active' | 'disabled';
}) {
  return { id: user.id, external_id: user.externalId, status: user.status };
}

// ---- /v1/accounts ---------------------------------------------------------------------------

export const accountId = z.object({
  id: z.string().regex(/^acct_[0-9A-Za-z]{1,64}$/, 'expected an account id (acct_…)'),
});

export const listAccountsQuery = z.strictObject({
  /** Part of the email or name, case-insensitive. */
  q: z.string().max(320).optional(),
  status: z.enum(['active', 'disabled']).optional(),
  ...pageQuery,
});

export const updateAccountBody = z.strictObject({
  name: z.string().trim().min(1).max(100).nullable().optional(),
  email: z.string().trim().min(3).max(320).optional(),
  status: z.enum(['active', 'disabled']).optional(),
});

export const accountSchema = z.strictObject({
  id: z.string(),
  email: z.string(),
  name: z.string().nullable(),
  email_verified: z.boolean(),
  status: z.enum(['active', 'disabled']),
  is_admin: z.boolean(),
  created_at: z.string(),
});

export const accountList = z.strictObject({
  accounts: z.array(accountSchema),
  next_cursor: z.string().nullable(),
});

export function toAccountJson(account: Account): z.input<typeof accountSchema> {
  return {
    id: account.id,
    email: account.email,
    name: account.name,
    email_verified: account.emailVerified,
    status: account.status,
    is_admin: account.isAdmin,
    created_at: account.createdAt.toISOString(),
  };
}

/** The list cursor is the last row's sort key (its lower-cased email), opaque to clients. */
export function encodeAccountCursor(sortKey: string): string {
  return Buffer.from(sortKey, 'utf8').toString('base64url');
}

export function decodeAccountCursor(cursor: string): string | null {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return null;
  const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
  // Round-trips only if it was valid UTF-8 we encoded; an email key always contains `@`.
  if (encodeAccountCursor(decoded) !== cursor || !decoded.includes('@')) return null;
  return decoded;
}
