// Request and response shapes of /v1/keys and /v1/auth/verify (mirrored in openapi.yaml).
import { z } from 'zod';
import { SCOPES } from '../platform/auth.ts';
import { pageQuery } from '../platform/cursor.ts';
import { KEY_KINDS, normalizeOrigin } from './format.ts';

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
  accountId: accountId.optional(),
  appId: appId.nullable().optional(),
  scopes: z.array(scope).min(1).max(SCOPES.length).optional(),
  allowedOrigins: z.array(origin).min(1).max(MAX_ORIGINS).optional(),
  allowedResources: z.array(resource).min(1).max(MAX_RESOURCES).optional(),
  expiresAt: dateTime.nullable().optional(),
});

export const updateKeyBody = z
  .strictObject({
    name: name.optional(),
    scopes: z.array(scope).min(1).max(SCOPES.length).optional(),
    allowedOrigins: z.array(origin).min(1).max(MAX_ORIGINS).nullable().optional(),
    allowedResources: z.array(resource).min(1).max(MAX_RESOURCES).nullable().optional(),
    expiresAt: dateTime.nullable().optional(),
  })
  .refine((body) => Object.keys(body).length > 0, { error: 'name at least one field to change' });

export const rotateKeyBody = z.strictObject({
  // A day by default: long enough to roll a deployment, short enough to bound a leak.
  graceSeconds: z
    .int()
    .min(0)
    .max(MAX_GRACE_SECONDS)
    .default(24 * 60 * 60),
  expiresAt: dateTime.nullable().optional(),
});

export const keyParams = z.object({ id: keyId });
// Not strict: before paging, unknown query parameters were ignored, and callers may send some.
export const listQuery = z.object({ accountId: accountId.optional(), ...pageQuery });

const iso = z.date().transform((d) => d.toISOString());

export const apiKeyView = z.object({
  id: z.string(),
  accountId: z.string(),
  appId: z.string().nullable(),
  kind: z.enum(KEY_KINDS),
  name: z.string(),
  scopes: z.array(z.string()),
  allowedOrigins: z.array(z.string()).nullable(),
  allowedResources: z.array(z.string()).nullable(),
  displayPrefix: z.string(),
  status: z.enum(['active', 'expired', 'revoked']),
  rotationDue: z.boolean(),
  createdBy: z.string(),
  createdAt: iso,
  updatedAt: iso,
  expiresAt: iso.nullable(),
  lastUsedAt: iso.nullable(),
  revokedAt: iso.nullable(),
  replacedBy: z.string().nullable(),
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
  accountId: z.string(),
  appId: z.string().nullable(),
  keyId: z.string().nullable(),
  scopes: z.array(z.string()).readonly(),
});
