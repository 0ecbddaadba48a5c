// Accounts and apps: the rules (who may hold which scope, which grant types each kind of app
// may use, how secrets are minted, hashed and rotated) and their transactions.
import { sql } from 'kysely';
import type { Kysely, Transaction } from 'kysely';
import { recordAudit } from '../platform/audit.ts';
import type { Database } from '../database.ts';
import type { Page } from '../platform/cursor.ts';
import { pageLimit, decodePosition, encodePosition, toPage } from '../platform/cursor.ts';
import { Conflict, Forbidden, InvalidRequest, NotFound } from '../platform/errors.ts';
import { newId, randomBase62 } from '../platform/ids.ts';
import type { Secrets } from '../platform/secrets.ts';
import { API_SCOPES, KIND_GRANT_TYPES, isConfidential } from './clients.ts';
import { DUMMY_PASSWORD_HASH, hashPassword, verifyPassword } from './passwords.ts';
import {
  findAccountByEmail,
  findAccountById,
  findAccountByIdForUpdate,
  listAccounts,
  updateAccountById,
  findAppByClientId,
  findAppById,
  findAppOwner,
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
import type { Clock } from '../platform/clock.ts';
import type { Directory } from '../platform/directory.ts';
import { systemClock } from '../platform/clock.ts';

export interface Actor {
  /** `acct_…`, or `cli` for the operator at the command line. */
  id: string;
  requestId?: string | null;
  /** The account the caller acts as (REST), so it cannot disable itself; absent for the CLI. */
  accountId?: string | null;
}

// NIST SP 800-63B §5.1.1.2: at least 8 characters; 1024 caps scrypt's input work.
const MIN_PASSWORD = 8;
const MAX_PASSWORD = 1024;
// RFC 5321 §4.5.3.1: a path is at most 256 octets; 320 is the usual local@domain bound.
const MAX_EMAIL = 320;
const MAX_NAME = 100;
/** NOTIFY channel: payload is the id of an account that changed (status, email, name). */
export const ACCOUNTS_CHANNEL = 'identity_accounts';

export interface AccountPatch {
  name?: string | null;
  email?: string;
  status?: 'active' | 'disabled';
}

export interface AccountPage {
  accounts: Account[];
  /** Pass back as `after` for the next page; null on the last page. */
  next: string | null;
}

export interface AccountsService {
  create(input: {
    email: string;
    password: string | null;
    name?: string | null;
    isAdmin?: boolean;
    /** Default true: the operator typed the address in. Self sign-up passes false. */
    emailVerified?: boolean;
  }): Promise<Account>;
  /** The active account these credentials belong to, or null — the same answer, in about the
   * same time, for an unknown email, a wrong password and a disabled account. */
  authenticate(email: string, password: string): Promise<Account | null>;
  get(id: string): Promise<Account | null>;
  /** The account with this email (compared without case), or null. */
  findByEmail(email: string): Promise<Account | null>;
  /** By id (`acct_…`) or email; NotFound otherwise. */
  find(idOrEmail: string): Promise<Account>;
  list(filter: {
    search?: string | null;
    status?: 'active' | 'disabled' | null;
    limit: number;
    after?: string | null;
  }): Promise<AccountPage>;
  /** Edits name, email or status. A status change applies to every replica at once: the
   * account's API keys, access tokens and refresh tokens are refused while it is disabled. */
  update(id: string, patch: AccountPatch, actor: Actor): Promise<Account>;
}

export interface AccountsDeps {
  db: Kysely<Database>;
  /** Runs after a change commits, before the caller gets its answer: this process's caches
   * follow at once; the others follow the NOTIFY sent with the change. */
  onChanged?: (accountId: string) => Promise<void> | void;
}

export function checkEmail(raw: string): string {
  const email = raw.trim();
  if (!/^[^\s@]+@[^\s@]+$/.test(email) || email.length > MAX_EMAIL) {
    throw new InvalidRequest('email: expected an email address');
  }
  return email;
}

export function checkName(raw: string | null): string | null {
  if (raw === null) return null;
  const name = raw.trim();
  // No control characters (C0 and DEL): a name is shown in pages, logs and the console.
  const control = [...name].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);
  if (name.length === 0 || name.length > MAX_NAME || control) {
    throw new InvalidRequest(`name: expected 1 to ${MAX_NAME} printable characters, or null`);
  }
  return name;
}

const UNIQUE_VIOLATION = '23505';

export function createAccountsService({ db, onChanged }: AccountsDeps): AccountsService {
  async function get(id: string) {
    const row = await findAccountById(db, id);
    return row === undefined ? null : toAccount(row);
  }
  return {
    async create(input) {
      const email = checkEmail(input.email);
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
        // The operator typed it in: treat it as verified. Self sign-up confirms it by e-mail.
        email_verified: input.emailVerified ?? true,
      });
      return toAccount(row);
    },
    async authenticate(email, password) {
      if (password.length > MAX_PASSWORD || email.length > MAX_EMAIL) return null;
      const row = await findAccountByEmail(db, email.trim());
      const ok = await verifyPassword(password, row?.password_hash ?? DUMMY_PASSWORD_HASH);
      if (!ok || row === undefined || row.password_hash === null || row.status !== 'active') {
        return null;
      }
      return toAccount(row);
    },
    get,
    async findByEmail(email) {
      const row = await findAccountByEmail(db, email.trim());
      return row === undefined ? null : toAccount(row);
    },
    async find(idOrEmail) {
      const row = idOrEmail.includes('@')
        ? await findAccountByEmail(db, idOrEmail.trim())
        : await findAccountById(db, idOrEmail);
      if (row === undefined) throw new NotFound(`No account ${idOrEmail.slice(0, 100)}`);
      return toAccount(row);
    },
    async list(filter) {
      const limit = pageLimit(filter.limit);
      const search = filter.search?.trim() || null;
      // One more than asked tells whether there is a next page without a count query.
      const rows = await listAccounts(db, {
        search,
        status: filter.status ?? null,
        afterEmail: filter.after ?? null,
        limit: limit + 1,
      });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        accounts: page.map((row) => toAccount(row)),
        next: rows.length > limit && last !== undefined ? last.sort_key : null,
      };
    },
    async update(id, patch, actor) {
      const name = patch.name === undefined ? undefined : checkName(patch.name);
      const email = patch.email === undefined ? undefined : checkEmail(patch.email);
      if (name === undefined && email === undefined && patch.status === undefined) {
        throw new InvalidRequest('expected at least one of name, email, status');
      }
      if (patch.status === 'disabled' && actor.accountId === id) {
        throw new Conflict('You cannot disable the account you are acting as');
      }
      let row;
      try {
        row = await db.transaction().execute(async (trx) => {
          const current = await findAccountByIdForUpdate(trx, id);
          if (current === undefined) throw new NotFound(`No account ${id}`);
          const updated = await updateAccountById(trx, id, {
            ...(name === undefined ? {} : { name }),
            // The operator typed it in, as at creation: verified.
            ...(email === undefined ? {} : { email, email_verified: true }),
            ...(patch.status === undefined ? {} : { status: patch.status }),
          });
          const statusChanged = patch.status !== undefined && patch.status !== current.status;
          await sql`select pg_notify(${ACCOUNTS_CHANNEL}, ${id})`.execute(trx);
          await recordAudit(trx, {
            actor: actor.id,
            action: statusChanged
              ? patch.status === 'disabled'
                ? 'account.disable'
                : 'account.enable'
              : 'account.update',
            subject: id,
            requestId: actor.requestId ?? null,
            details: {
              fields: Object.keys(patch).filter(
                (k) => patch[k as keyof AccountPatch] !== undefined,
              ),
            },
          });
          return updated!;
        });
      } catch (error) {
        if ((error as { code?: string }).code === UNIQUE_VIOLATION) {
          throw new Conflict('An account with this email already exists');
        }
        throw error;
      }
      await onChanged?.(id);
      return toAccount(row);
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

/**
 * Who acts on apps through the REST API: null for an admin or the CLI (any app, any owner);
 * otherwise a customer, limited to its own account's apps and to scopes its credential holds
 * (the rule /v1/keys applies to keys), so self-service cannot widen a credential.
 */
export type AppCaller = { accountId: string; scopes: readonly string[] } | null;

export interface AppUser {
  id: string;
  appId: string;
  externalId: string;
  status: 'active' | 'disabled';
}

export interface AppsService {
  create(
    input: AppInput,
    actor: Actor,
    caller?: AppCaller,
  ): Promise<{ app: App; clientSecret: string | null }>;
  /**
   * A page of apps, oldest first: one account's, or every account's for null. `cursor` is a
   * `nextCursor` this returned for the same owner (any other is refused with 400).
   */
  list(
    ownerAccountId: string | null,
    query?: { limit?: number; cursor?: string },
  ): Promise<Page<App>>;
  /** NotFound also for another account's app when `caller` is a customer (existence is not
   * confirmed). */
  get(id: string, caller?: AppCaller): Promise<App>;
  update(id: string, patch: AppPatch, actor: Actor, caller?: AppCaller): Promise<App>;
  /** New secret; the old one keeps working until `graceSeconds` from now (0: stops now). */
  rotateSecret(
    id: string,
    graceSeconds: number,
    actor: Actor,
    caller?: AppCaller,
  ): Promise<{ app: App; clientSecret: string }>;
  /** Served from memory; changes reach every replica through NOTIFY (`APPS_CHANNEL`). */
  findActiveByClientId(clientId: string): Promise<App | null>;
  /** Drops the cached app for `clientId`, or every cached app for null. */
  invalidate(clientId: string | null): void;
  /** Drops the cached apps of an account whose status changed (they get no tokens while it is
   * disabled). */
  invalidateOwner(accountId: string): void;
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
  clock = systemClock,
}: {
  db: Kysely<Database>;
  secrets: Secrets;
  clock?: Clock;
}): AppsService {
  const hashSecret = (secret: string) => secrets.hmac('app-client-secrets', secret);
  const cache = new Map<string, { app: App; expiresAt: number }>();
  const mintSecret = () => `thcs_${randomBase62(SECRET_BYTES)}`;

  async function load(id: string, caller: AppCaller = null): Promise<App> {
    const row = await findAppById(db, id);
    // Another account's app answers like a missing one: ids are not confirmed to customers.
    if (row === undefined || (caller !== null && row.owner_account_id !== caller.accountId)) {
      throw new NotFound(`No app ${id}`);
    }
    return toApp(row, clock());
  }

  function checkCallerScopes(scopes: readonly string[], caller: AppCaller): void {
    if (caller === null) return;
    const excess = scopes.filter((s) => !caller.scopes.includes(s));
    if (excess.length > 0) {
      throw new Forbidden(`You cannot grant scopes this credential lacks: ${excess.join(', ')}`);
    }
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
    async create(input, actor, caller = null) {
      if (caller !== null && input.ownerAccountId !== caller.accountId) {
        throw new Forbidden('Registering an app for another account needs the admin scope');
      }
      const owner = await findAccountById(db, input.ownerAccountId);
      if (owner === undefined) throw new NotFound(`No account ${input.ownerAccountId}`);
      const grantTypes = input.grantTypes ?? [...KIND_GRANT_TYPES[input.kind]];
      const scopes = input.scopes ?? ['gateway'];
      const redirectUris = input.redirectUris ?? [];
      const postLogout = input.postLogoutRedirectUris ?? [];
      const origins = input.allowedOrigins ?? [];
      checkShape(input.kind, grantTypes, redirectUris, postLogout, origins);
      checkCallerScopes(scopes, caller);
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
      return { app: toApp(row, clock()), clientSecret };
    },
    async list(ownerAccountId, query = {}) {
      const limit = pageLimit(query.limit);
      // The scope in the cursor: an operator's all-accounts list is a different list.
      const scope = ownerAccountId ?? '*';
      const after =
        query.cursor === undefined ? null : decodePosition(query.cursor, 'apps', scope, 'app');
      const rows = await listApps(db, ownerAccountId, { after, limit: limit + 1 });
      return toPage(
        rows,
        limit,
        (position) => encodePosition('apps', scope, position),
        (row) => toApp(row, clock()),
      );
    },
    get: load,
    async update(id, patch, actor, caller = null) {
      const app = await load(id, caller);
      const next = {
        grantTypes: patch.grantTypes ?? app.grantTypes,
        redirectUris: patch.redirectUris ?? app.redirectUris,
        postLogout: patch.postLogoutRedirectUris ?? app.postLogoutRedirectUris,
        origins: patch.allowedOrigins ?? app.allowedOrigins,
      };
      checkShape(app.kind, next.grantTypes, next.redirectUris, next.postLogout, next.origins);
      if (patch.scopes !== undefined) {
        checkCallerScopes(patch.scopes, caller);
        await checkScopes(patch.scopes, app.ownerAccountId);
      }
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
      return toApp(row, clock());
    },
    async rotateSecret(id, graceSeconds, actor, caller = null) {
      if (!Number.isInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > MAX_GRACE_SECONDS) {
        throw new InvalidRequest(
          `grace_seconds: expected an integer from 0 to ${MAX_GRACE_SECONDS}`,
        );
      }
      const app = await load(id, caller);
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
            graceSeconds > 0 ? new Date(clock().getTime() + graceSeconds * 1000) : null,
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
      return { app: toApp(row, clock()), clientSecret };
    },
    async findActiveByClientId(clientId) {
      const now = Date.now();
      const hit = cache.get(clientId);
      if (hit !== undefined && hit.expiresAt > now) return hit.app;
      const row = await findAppByClientId(db, clientId);
      // An app whose owner account is disabled gets no tokens either (invalidateOwner drops the
      // cached app when the owner's status changes).
      const owner = row === undefined ? undefined : await findAccountById(db, row.owner_account_id);
      // Unknown and disabled apps are not cached: random client ids must not fill memory.
      if (row === undefined || row.status !== 'active' || owner?.status !== 'active') {
        cache.delete(clientId);
        return null;
      }
      const app = toApp(row, clock());
      if (cache.size >= CLIENT_CACHE_MAX) cache.clear();
      cache.set(clientId, { app, expiresAt: now + CLIENT_CACHE_TTL_MS });
      return app;
    },
    invalidate(clientId) {
      if (clientId === null) cache.clear();
      else cache.delete(clientId);
    },
    invalidateOwner(accountId) {
      for (const [clientId, { app }] of cache) {
        if (app.ownerAccountId === accountId) cache.delete(clientId);
      }
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
      const row = await db.transaction().execute(async (trx) => {
        const updated = await updateAppUserStatus(trx, appId, externalId, status);
        const app = updated === undefined ? undefined : await findAppById(trx, appId);
        // Every replica re-reads which app users are disabled (the verifier refuses their
        // tokens at once), through the channel app changes already use.
        if (app !== undefined) await notifyAppChanged(trx, app.client_id);
        return updated;
      });
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

/** Identity's answer to the platform Directory port (accounts and apps other capabilities check). */
export function createDirectory(db: Kysely<Database>): Directory {
  return {
    async account(accountId) {
      const row = await findAccountById(db, accountId);
      return row === undefined ? null : { emailVerified: row.email_verified };
    },
    appOwner: (appId) => findAppOwner(db, appId),
    async alertAddress(accountId) {
      const row = await findAccountById(db, accountId);
      return row !== undefined && row.email_verified && row.status === 'active' ? row.email : null;
    },
  };
}
