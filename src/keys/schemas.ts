// Request and response shapes of /v1/keys and /v1/auth/verify (mirrored in openapi.yaml).
import { z } from 'zod';
import { limitSettingsSchema } from '../platform/limits.ts';
import type { Principal } from '../platform/auth.ts';
import { SCOPES } from '../platform/auth.ts';
import type { Page } from '../platform/cursor.ts';
import { pageQuery } from '../platform/cursor.ts';
import { KEY_KINDS, normalizeOrigin } from './format.ts';
import type { ApiKeyView, IssuedKey, KeyPatch, NewKeyInput, RotateInput } from './service.ts';

// Limits keep one key row and one verification small; they are far above real use (hosted
// gateways allow a handful of origins per browser key).
const MAX_ORIGINS = 100;
const MAX_RESOURCES = 1_000;
// Model ids are `org/name` on Hugging Face (up to 96 characters each part).
const MAX_RESOURCE_LENGTH = 256;
// A rotation grace window longer than a month defeats the point of rotating.
const MAX_GRACE_SECONDS = 30 * 24 * 60 * 60;

export const keyId = z.string().regex(/^key_[0-9A-Za-z]{22}$/, 'expected a key id (key_…)');
export const accountId = z
  .string()
  .regex(/^acct_[0-9A-Za-z]{22}$/, 'expected an account id (acct_…)');
const appId = z.string().regex(/^app_[0-9A-Za-z]{22}$/, 'expected an app id (app_…)');
const scope = z.enum(SCOPES);
const name = z.string().trim().min(1).max(100);
const origin = z
  .string()
  .max(2048)
  .transform((value, ctx) => {
    const normalized = normalizeOrigin(value);
    if (normalized === null) {
      ctx.addIssue({
        code: 'custom',
        message: 'expected an origin such as https://app.example.com (no path)',
      });
      return z.NEVER;
    }
    return normalized;
  });
export const resource = z
  .string()
  .min(1)
  .max(MAX_RESOURCE_LENGTH)
  .regex(/^[\x21-\x7e]+$/, 'expected printable ASCII without spaces');
const dateTime = z.iso
  .datetime({ offset: true, error: 'expected an RFC 3339 date-time' })
  .transform((v) => new Date(v));

export const createKeyBody = z.strictObject({
  name,
  kind: z.enum(KEY_KINDS).default('backend'),
  account_id: accountId.optional(),
  app_id: appId.nullable().optional(),
  scopes: z.array(scope).min(1).max(SCOPES.length).optional(),
  allowed_origins: z.array(origin).min(1).max(MAX_ORIGINS).optional(),
  allowed_resources: z.array(resource).min(1).max(MAX_RESOURCES).optional(),
  expires_at: dateTime.nullable().optional(),
});

export const updateKeyBody = z
  .strictObject({
    name: name.optional(),
    scopes: z.array(scope).min(1).max(SCOPES.length).optional(),
    allowed_origins: z.array(origin).min(1).max(MAX_ORIGINS).nullable().optional(),
    allowed_resources: z.array(resource).min(1).max(MAX_RESOURCES).nullable().optional(),
    expires_at: dateTime.nullable().optional(),
  })
  .refine((body) => Object.keys(body).length > 0, { error: 'name at least one field to change' });

export const rotateKeyBody = z.strictObject({
  // A day by default: long enough to roll a deployment, short enough to bound a leak.
  grace_seconds: z
    .int()
    .min(0)
    .max(MAX_GRACE_SECONDS)
    .default(24 * 60 * 60),
  expires_at: dateTime.nullable().optional(),
});

export const keyParams = z.object({ id: keyId });
// Strict: `accountId` (its name before issue #17) silently ignored would list the caller's own
// keys instead of the account asked for.
export const listQuery = z.strictObject({ account_id: accountId.optional(), ...pageQuery });

// What a caller sees of a key: snake_case (house style rule 6), dates as RFC 3339 strings.
export const apiKeyView = z.object({
  id: z.string(),
  account_id: z.string(),
  app_id: z.string().nullable(),
  kind: z.enum(KEY_KINDS),
  name: z.string(),
  scopes: z.array(z.string()),
  allowed_origins: z.array(z.string()).nullable(),
  allowed_resources: z.array(z.string()).nullable(),
  display_prefix: z.string(),
  status: z.enum(['active', 'expired', 'revoked']),
  rotation_due: z.boolean(),
  created_by: z.string(),
  created_at: z.string(),
  updated_at: z.string(),
  expires_at: z.string().nullable(),
  last_used_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
  replaced_by: z.string().nullable(),
});

export const issuedKey = z.object({ key: apiKeyView, secret: z.string() });
export const rotatedKey = issuedKey.extend({ previous: apiKeyView });
export const keyList = z.object({ keys: z.array(apiKeyView), next_cursor: z.string().nullable() });

const oneOrMany = <T extends z.ZodType>(item: T) =>
  z
    .union([item, z.array(item).max(32)])
    .optional()
    .transform((v) => (v === undefined ? undefined : Array.isArray(v) ? v : [v]));

export const verifyQuery = z.object({
  resource: oneOrMany(resource),
  scope: oneOrMany(scope),
});

export const verifiedPrincipal = z.object({
  via: z.enum(['api_key', 'access_token']),
  account_id: z.string(),
  app_id: z.string().nullable(),
  key_id: z.string().nullable(),
  scopes: z.array(z.string()).readonly(),
});

// ---- views: the one place domain objects (camelCase) become what callers see ----------------

const isoOrNull = (d: Date | null) => (d === null ? null : d.toISOString());

/** A key as /v1/keys and `tollhouse keys` show it. */
export function toApiKeyView(key: ApiKeyView): z.output<typeof apiKeyView> {
  return {
    id: key.id,
    account_id: key.accountId,
    app_id: key.appId,
    kind: key.kind,
    name: key.name,
    scopes: key.scopes,
    allowed_origins: key.allowedOrigins,
    allowed_resources: key.allowedResources,
    display_prefix: key.displayPrefix,
    status: key.status,
    rotation_due: key.rotationDue,
    created_by: key.createdBy,
    created_at: key.createdAt.toISOString(),
    updated_at: key.updatedAt.toISOString(),
    expires_at: isoOrNull(key.expiresAt),
    last_used_at: isoOrNull(key.lastUsedAt),
    revoked_at: isoOrNull(key.revokedAt),
    replaced_by: key.replacedBy,
  };
}

export function toIssuedKeyView(issued: IssuedKey): z.output<typeof issuedKey> {
  return { key: toApiKeyView(issued.key), secret: issued.secret };
}

export function toRotatedKeyView(
  rotated: IssuedKey & { previous: ApiKeyView },
): z.output<typeof rotatedKey> {
  return { ...toIssuedKeyView(rotated), previous: toApiKeyView(rotated.previous) };
}

export function toKeyListView(page: Page<ApiKeyView>): z.output<typeof keyList> {
  return { keys: page.items.map(toApiKeyView), next_cursor: page.nextCursor };
}

export function toVerifiedPrincipalView(principal: Principal): z.output<typeof verifiedPrincipal> {
  return {
    via: principal.via,
    account_id: principal.accountId,
    app_id: principal.appId,
    key_id: principal.keyId,
    scopes: principal.scopes,
  };
}

// ---- request bodies → the service's inputs --------------------------------------------------

export function toNewKeyInput(body: z.output<typeof createKeyBody>): NewKeyInput {
  return {
    name: body.name,
    kind: body.kind,
    accountId: body.account_id,
    appId: body.app_id,
    scopes: body.scopes,
    allowedOrigins: body.allowed_origins,
    allowedResources: body.allowed_resources,
    expiresAt: body.expires_at,
  };
}

export function toKeyPatch(body: z.output<typeof updateKeyBody>): KeyPatch {
  // Only the fields the caller sent: the service treats a present null as "clear it".
  const patch: KeyPatch = {};
  if (body.name !== undefined) patch.name = body.name;
  if (body.scopes !== undefined) patch.scopes = body.scopes;
  if (body.allowed_origins !== undefined) patch.allowedOrigins = body.allowed_origins;
  if (body.allowed_resources !== undefined) patch.allowedResources = body.allowed_resources;
  if (body.expires_at !== undefined) patch.expiresAt = body.expires_at;
  return patch;
}

export function toRotateInput(body: z.output<typeof rotateKeyBody>): RotateInput {
  return { graceSeconds: body.grace_seconds, expiresAt: body.expires_at };
}

/** PUT /v1/keys/{id}/limits: the override (null or absent: inherit the plan's, else the setting). */
export const keyLimitsBody = limitSettingsSchema;
const overrideCount = z.number().int().min(0).nullable();
export const keyLimitsView = z.object({
  key_id: z.string(),
  account_id: z.string(),
  override: z.object({
    rate: overrideCount,
    burst: overrideCount,
    concurrency: overrideCount,
  }),
});
