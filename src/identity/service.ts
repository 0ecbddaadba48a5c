// Accounts and apps: the rules (who may hold which scope, which grant types each kind of app
// may use, how secrets are minted, hashed and rotated) and their transactions.
import { sql } from 'kysely';
import type { Kysely, Transaction } from 'kysely';
import { recordAudit } from '../platform/audit.ts';
import type { Database } from '../platform/db.ts';
import { Conflict, InvalidRequest, NotFound } from '../platform/errors.ts';
import { newId, randomBase62 } from '../platform/ids.ts';
import type { Secrets } from '../platform/secrets.ts';
import { API_SCOPES, KIND_GRANT_TYPES, isConfidential } from './clients.ts';
import { DUMMY_PASSWORD_HASH, hashPassword, verifyPassword } from './passwords.ts';
import {
  findAccountByEmail,
  findAccountById,
  findAppByClientId,
  findAppById,
  insertAccount,
  insertApp,
  listApps,
  toAccount,
  toApp,
  updateAppById,
  listAppUsers,
  updateAppUserStatus,
  upsertAppUser,
} from './queries.ts';
import type { AppUserRow } from './table.ts';

function toAppUser(row: AppUserRow): AppUser {
  return { id: row.id, appId: row.app_id, externalId: row.external_id, status: row.status };
}
import type { Account, App, AppKind } from './queries.ts';

export interface Actor {
  /** `acct_…`, or `cli` for the operator at the command line. */
  id: string;
  requestId?: string | null;
}

// NIST SP 800-63B §5.1.1.2: at least 8 characters; 1024 caps scrypt's input work.
const MIN_PASSWORD = 8;
const MAX_PASSWORD = 1024;

export interface AccountsService {
  create(input: {
    email: string;
    password: string | null;
    name?: string | null;
    isAdmin?: boolean;
  }): Promise<Account>;
  /** The active account these credentials belong to, or null — the same answer, in about the
   * same time, for an unknown email, a wrong password and a disabled account. */
  authenticate(email: string, password: string): Promise<Account | null>;
  get(id: string): Promise<Account | null>;
}

export function createAccountsService({ db }: { db: Kysely<Database> }): AccountsService {
  return {
    async create(input) {
      const email = input.email.trim();
      if (!/^[^\s@]+@[^\s@]+$/.test(email) || email.length > 320) {
        throw new InvalidRequest('email: expected an email address');
      }
      if (input.password !== null) checkPassword(input.password);
      if ((await findAccountByEmail(db, email)) !== undefined) {
        throw new Conflict('An account with this email already exists');
      }
      const row = await insertAccount(db, {
        id: newId('acct'),
        email,
        name: input.name ?? null,
        password_hash: input.password === null ? null : await hashPassword(input.password),
        is_admin: input.isAdmin ?? false,
        // The operator typed it in: treat it as verified (there is no email sending yet).
        email_verified: true,
      });
      return toAccount(row);
    },
    async authenticate(email, password) {
      if (password.length > MAX_PASSWORD || email.length > 320) return null;
      const row = await findAccountByEmail(db, email.trim());
      const ok = await verifyPassword(password, row?.password_hash ?? DUMMY_PASSWORD_HASH);
      if (!ok || row === undefined || row.password_hash === null || row.status !== 'active') {
        return null;
      }
      return toAccount(row);
    },
    async get(id) {
      const row = await findAccountById(db, id);
      return row === undefined ? null : toAccount(row);
    },
  };
}

export function checkPassword(password: string): void {
  if (password.length < MIN_PASSWORD || password.length > MAX_PASSWORD) {
    throw new InvalidRequest(`password: expected ${MIN_PASSWORD} to ${MAX_PASSWORD} characters`);
  }
}

export interface AppInput {
  name: string;
  kind: AppKind;
  ownerAccountId: string;
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  allowedOrigins?: string[];
  scopes?: string[];
  grantTypes?: string[];
}

export interface AppPatch {
  name?: string;
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  allowedOrigins?: string[];
  scopes?: string[];
  grantTypes?: string[];
  status?: 'active' | 'disabled';
}

export interface AppUser {
  id: string;
  appId: string;
  externalId: string;
  status: 'active' | 'disabled';
}

export interface AppsService {
  create(input: AppInput, actor: Actor): Promise<{ app: App; clientSecret: string | null }>;
  list(ownerAccountId: string | null): Promise<App[]>;
  get(id: string): Promise<App>;
  update(id: string, patch: AppPatch, actor: Actor): Promise<App>;
  /** New secret; the old one keeps working until `graceSeconds` from now (0: stops now). */
  rotateSecret(
    id: string,
    graceSeconds: number,
    actor: Actor,
  ): Promise<{ app: App; clientSecret: string }>;
  /** Served from memory; changes reach every replica through NOTIFY (`APPS_CHANNEL`). */
  findActiveByClientId(clientId: string): Promise<App | null>;
  /** Drops the cached app for `clientId`, or every cached app for null. */
  invalidate(clientId: string | null): void;
  ensureAppUser(appId: string, externalId: string): Promise<AppUser>;
  listAppUsers(appId: string): Promise<AppUser[]>;
  setAppUserStatus(
    appId: string,
    externalId: string,
    status: 'active' | 'disabled',
  ): Promise<AppUser>;
}

/** NOTIFY channel: payload is the client id of an app that changed. */
export const APPS_CHANNEL = 'identity_apps';
// The token endpoint looks its client up on every request; apps change rarely and every change
// is NOTIFYed, so the cache only needs a bound for the case NOTIFY cannot cover: a rotation's
// grace period ending (the previous secret stops working at most this late).
const CLIENT_CACHE_TTL_MS = 30_000;
// Bound the cache; registered apps number in the hundreds, not the hundred thousands.
const CLIENT_CACHE_MAX = 10_000;

async function notifyAppChanged(trx: Transaction<Database>, clientId: string): Promise<void> {
  await sql`select pg_notify(${APPS_CHANNEL}, ${clientId})`.execute(trx);
}

// 256 bits, base62: as strong as the HMAC that stores it.
const SECRET_BYTES = 32;
// A rotation's grace period can be long (a slow rollout) but not open-ended.
export const MAX_GRACE_SECONDS = 30 * 24 * 3600;

export function createAppsService({
  db,
  secrets,
}: {
  db: Kysely<Database>;
  secrets: Secrets;
}): AppsService {
  const hashSecret = (secret: string) => secrets.hmac('app-client-secrets', secret);
  const cache = new Map<string, { app: App; expiresAt: number }>();
  const mintSecret = () => `thcs_${randomBase62(SECRET_BYTES)}`;

  async function load(id: string): Promise<App> {
    const row = await findAppById(db, id);
    if (row === undefined) throw new NotFound(`No app ${id}`);
    return toApp(row);
  }

  async function checkScopes(scopes: string[], ownerAccountId: string): Promise<void> {
    const unknown = scopes.filter((s) => !(API_SCOPES as readonly string[]).includes(s));
    if (unknown.length > 0) {
      throw new InvalidRequest(`scopes: unknown scope ${unknown.join(', ')}`);
    }
    if (scopes.includes('admin')) {
      const owner = await findAccountById(db, ownerAccountId);
      if (owner?.is_admin !== true) {
        throw new InvalidRequest(
          'scopes: only an admin account may own an app with the admin scope',
        );
      }
    }
  }

  function checkShape(
    kind: AppKind,
    grantTypes: string[],
    redirectUris: string[],
    postLogoutRedirectUris: string[],
    allowedOrigins: string[],
  ): void {
    const allowed = KIND_GRANT_TYPES[kind];
    const refused = grantTypes.filter((g) => !allowed.includes(g));
    if (refused.length > 0) {
      throw new InvalidRequest(`grant_types: a ${kind} app cannot use ${refused.join(', ')}`);
    }
    if (grantTypes.length === 0) throw new InvalidRequest('grant_types: expected at least one');
    if (grantTypes.includes('authorization_code') && redirectUris.length === 0) {
      throw new InvalidRequest(
        'redirect_uris: expected at least one for the authorization code flow',
      );
    }
    for (const uri of [...redirectUris, ...postLogoutRedirectUris]) checkRedirectUri(uri);
    for (const origin of allowedOrigins) checkOrigin(origin);
  }

  return {
    async create(input, actor) {
      const owner = await findAccountById(db, input.ownerAccountId);
      if (owner === undefined) throw new NotFound(`No account ${input.ownerAccountId}`);
      const grantTypes = input.grantTypes ?? [...KIND_GRANT_TYPES[input.kind]];
      const scopes = input.scopes ?? ['gateway'];
      const redirectUris = input.redirectUris ?? [];
      const postLogout = input.postLogoutRedirectUris ?? [];
      const origins = input.allowedOrigins ?? [];
      checkShape(input.kind, grantTypes, redirectUris, postLogout, origins);
      await checkScopes(scopes, input.ownerAccountId);
      const clientSecret = isConfidential(input.kind) ? mintSecret() : null;
      const id = newId('app');
      const row = await db.transaction().execute(async (trx) => {
        const inserted = await insertApp(trx, {
          id,
          client_id: id,
          owner_account_id: input.ownerAccountId,
          name: input.name,
          kind: input.kind,
          redirect_uris: JSON.stringify(redirectUris),
          post_logout_redirect_uris: JSON.stringify(postLogout),
          allowed_origins: JSON.stringify(origins),
          grant_types: JSON.stringify(grantTypes),
          scopes: JSON.stringify(scopes),
          secret_hash: clientSecret === null ? null : hashSecret(clientSecret),
          previous_secret_hash: null,
          previous_secret_expires_at: null,
        });
        await recordAudit(trx, {
          actor: actor.id,
          action: 'app.create',
          subject: id,
          requestId: actor.requestId ?? null,
          details: { kind: input.kind, scopes },
        });
        return inserted;
      });
      return { app: toApp(row), clientSecret };
    },
    async list(ownerAccountId) {
      return (await listApps(db, ownerAccountId)).map((row) => toApp(row));
    },
    get: load,
    async update(id, patch, actor) {
      const app = await load(id);
      const next = {
        grantTypes: patch.grantTypes ?? app.grantTypes,
        redirectUris: patch.redirectUris ?? app.redirectUris,
        postLogout: patch.postLogoutRedirectUris ?? app.postLogoutRedirectUris,
        origins: patch.allowedOrigins ?? app.allowedOrigins,
      };
      checkShape(app.kind, next.grantTypes, next.redirectUris, next.postLogout, next.origins);
      if (patch.scopes !== undefined) await checkScopes(patch.scopes, app.ownerAccountId);
      const row = await db.transaction().execute(async (trx) => {
        const updated = await updateAppById(trx, id, {
          ...(patch.name === undefined ? {} : { name: patch.name }),
          ...(patch.status === undefined ? {} : { status: patch.status }),
          ...(patch.scopes === undefined ? {} : { scopes: JSON.stringify(patch.scopes) }),
          grant_types: JSON.stringify(next.grantTypes),
          redirect_uris: JSON.stringify(next.redirectUris),
          post_logout_redirect_uris: JSON.stringify(next.postLogout),
          allowed_origins: JSON.stringify(next.origins),
        });
        if (updated === undefined) throw new NotFound(`No app ${id}`);
        await notifyAppChanged(trx, updated.client_id);
        await recordAudit(trx, {
          actor: actor.id,
          action: patch.status === 'disabled' ? 'app.disable' : 'app.update',
          subject: id,
          requestId: actor.requestId ?? null,
          details: {
            fields: Object.keys(patch).filter((k) => patch[k as keyof AppPatch] !== undefined),
          },
        });
        return updated;
      });
      cache.delete(row.client_id); // this replica at once; the others on NOTIFY
      return toApp(row);
    },
    async rotateSecret(id, graceSeconds, actor) {
      if (!Number.isInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > MAX_GRACE_SECONDS) {
        throw new InvalidRequest(
          `grace_seconds: expected an integer from 0 to ${MAX_GRACE_SECONDS}`,
        );
      }
      const app = await load(id);
      if (!isConfidential(app.kind)) {
        throw new InvalidRequest('A public app has no secret to rotate');
      }
      const clientSecret = mintSecret();
      const row = await db.transaction().execute(async (trx) => {
        const current = await findAppById(trx, id);
        if (current === undefined) throw new NotFound(`No app ${id}`);
        const updated = await updateAppById(trx, id, {
          secret_hash: hashSecret(clientSecret),
          previous_secret_hash: graceSeconds > 0 ? current.secret_hash : null,
          previous_secret_expires_at:
            graceSeconds > 0 ? new Date(Date.now() + graceSeconds * 1000) : null,
        });
        await notifyAppChanged(trx, current.client_id);
        await recordAudit(trx, {
          actor: actor.id,
          action: 'app.rotate_secret',
          subject: id,
          requestId: actor.requestId ?? null,
          details: { graceSeconds },
        });
        return updated!;
      });
      cache.delete(row.client_id);
      return { app: toApp(row), clientSecret };
    },
    async findActiveByClientId(clientId) {
      const now = Date.now();
      const hit = cache.get(clientId);
      if (hit !== undefined && hit.expiresAt > now) return hit.app;
      const row = await findAppByClientId(db, clientId);
      // An app whose owner account is disabled gets no tokens either (within the cache TTL).
      const owner = row === undefined ? undefined : await findAccountById(db, row.owner_account_id);
      // Unknown and disabled apps are not cached: random client ids must not fill memory.
      if (row === undefined || row.status !== 'active' || owner?.status !== 'active') {
        cache.delete(clientId);
        return null;
      }
      const app = toApp(row);
      if (cache.size >= CLIENT_CACHE_MAX) cache.clear();
      cache.set(clientId, { app, expiresAt: now + CLIENT_CACHE_TTL_MS });
      return app;
    },
    invalidate(clientId) {
      if (clientId === null) cache.clear();
      else cache.delete(clientId);
    },
    async ensureAppUser(appId, externalId) {
      const row = await upsertAppUser(db, {
        id: newId('usr'),
        app_id: appId,
        external_id: externalId,
      });
      return toAppUser(row);
    },
    async listAppUsers(appId) {
      await load(appId);
      return (await listAppUsers(db, appId)).map(toAppUser);
    },
    async setAppUserStatus(appId, externalId, status) {
      const row = await updateAppUserStatus(db, appId, externalId, status);
      if (row === undefined) throw new NotFound(`No user ${externalId} in app ${appId}`);
      return toAppUser(row);
    },
  };
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Exact-match redirect URIs: absolute, no fragment (RFC 6749 §3.1.2), https except loopback
 * (RFC 8252 §7.3) or a native app's private-use scheme (RFC 8252 §7.1). */
function checkRedirectUri(uri: string): void {
  if (!URL.canParse(uri) || uri.length > 2000) {
    throw new InvalidRequest(
      `redirect_uris: ${JSON.stringify(uri.slice(0, 100))} is not an absolute URL`,
    );
  }
  const url = new URL(uri);
  if (url.hash !== '' || uri.includes('#')) {
    throw new InvalidRequest('redirect_uris: a redirect URI must not contain a fragment');
  }
  if (url.protocol === 'http:' && !LOOPBACK.has(url.hostname)) {
    throw new InvalidRequest(
      'redirect_uris: http is only allowed for loopback addresses; use https',
    );
  }
  if (/^(javascript|data|file|vbscript):$/.test(url.protocol)) {
    throw new InvalidRequest(`redirect_uris: the ${url.protocol} scheme is not allowed`);
  }
}

function checkOrigin(origin: string): void {
  if (!URL.canParse(origin) || new URL(origin).origin !== origin) {
    throw new InvalidRequest(
      `allowed_origins: ${JSON.stringify(origin.slice(0, 100))} is not an origin (scheme://host[:port])`,
    );
  }
}
