// Key management rules: who may manage which keys, what each kind of key may hold, rotation
// with a grace window. Every change is audited and NOTIFYs its key id in the same transaction,
// so the audit record, the change and the cache invalidation commit together.
import type { Kysely, Transaction } from 'kysely';
import { EmailNotVerified } from '../identity/index.ts';
import type { Directory } from '../platform/directory.ts';
import { recordAudit } from '../platform/audit.ts';
import type { Principal, Scope } from '../platform/auth.ts';
import { ruleFailed } from '../platform/auth.ts';
import type { Database } from '../database.ts';
import type { Page } from '../platform/cursor.ts';
import { pageLimit, decodePosition, encodePosition, toPage } from '../platform/cursor.ts';
import { Conflict, Forbidden, InvalidRequest, NotFound } from '../platform/errors.ts';
import { newId } from '../platform/ids.ts';
import { hasLimitSettings, parseLimitSettings } from '../platform/limits.ts';
import type { LimitSettings } from '../platform/limits.ts';
import type { Secrets } from '../platform/secrets.ts';
import type { KeyKind } from './format.ts';
import { mintKey } from './format.ts';
import type { ApiKey } from './queries.ts';
import {
  ROTATION_DUE_MS,
  findKeyById,
  findKeyByIdForUpdate,
  findKeysByAccount,
  insertKey,
  notifyKeyChanged,
  toApiKey,
  updateKeyById,
} from './queries.ts';
import type { ApiKeyRow } from './table.ts';
import { KEY_HASH_PURPOSE } from './verify.ts';
import type { Clock } from '../platform/clock.ts';
import { systemClock } from '../platform/clock.ts';

/** Who is asking: a request's principal, or the operator at the command line. */
export interface Caller {
  /** Recorded in the audit log: `key_…`, `acct_…` or `cli`. */
  actor: string;
  accountId: string | null;
  admin: boolean;
  scopes: readonly Scope[];
  /** Browser keys may never manage keys: they are public by design. */
  browser: boolean;
  requestId: string | null;
}

export function callerFromPrincipal(principal: Principal, requestId: string | null): Caller {
  return {
    actor: principal.keyId ?? principal.accountId,
    accountId: principal.accountId,
    admin: principal.scopes.includes('admin'),
    scopes: principal.scopes,
    browser: principal.allowedOrigins !== null,
    requestId,
  };
}

export const CLI_CALLER: Caller = {
  actor: 'cli',
  accountId: null,
  admin: true,
  scopes: ['admin'],
  browser: false,
  requestId: null,
};

export type KeyStatus = 'active' | 'expired' | 'revoked';

export interface ApiKeyView extends ApiKey {
  status: KeyStatus;
  /** Active and older than the recommended 90-day rotation schedule. */
  rotationDue: boolean;
}

export interface NewKeyInput {
  accountId?: string | undefined;
  appId?: string | null | undefined;
  kind: KeyKind;
  name: string;
  scopes?: Scope[] | undefined;
  allowedOrigins?: string[] | undefined;
  allowedResources?: string[] | undefined;
  expiresAt?: Date | null | undefined;
}

export interface KeyPatch {
  name?: string | undefined;
  scopes?: Scope[] | undefined;
  allowedOrigins?: string[] | null | undefined;
  allowedResources?: string[] | null | undefined;
  expiresAt?: Date | null | undefined;
}

export interface RotateInput {
  /** How long the old key keeps working; 0 refuses it at once. */
  graceSeconds: number;
  /** Expiry of the replacement (none by default). */
  expiresAt?: Date | null | undefined;
}

export interface IssuedKey {
  key: ApiKeyView;
  /** The full key, shown once. */
  secret: string;
}

export interface KeyServiceDeps {
  db: Kysely<Database>;
  secrets: Secrets;
  directory: Directory;
  clock?: Clock;
  /**
   * Called after a change to key `id` commits. This process applies it to its own cache at
   * once, so the answer to the request that revoked or rotated a key is already enforced
   * here; other replicas learn it from the NOTIFY sent in the same transaction.
   */
  onChanged?: (id: string) => void;
}

export type KeyService = ReturnType<typeof createKeyService>;

export function createKeyService(deps: KeyServiceDeps) {
  const { db, secrets } = deps;
  const clock = deps.clock ?? systemClock;
  const now = () => clock().getTime();
  const changed = <T>(id: string, result: T): T => {
    deps.onChanged?.(id);
    return result;
  };

  function view(key: ApiKey): ApiKeyView {
    const at = now();
    const status: KeyStatus =
      key.revokedAt !== null
        ? 'revoked'
        : key.expiresAt !== null && key.expiresAt.getTime() <= at
          ? 'expired'
          : 'active';
    return {
      ...key,
      status,
      rotationDue: status === 'active' && at - key.createdAt.getTime() > ROTATION_DUE_MS,
    };
  }

  function assertMayManage(caller: Caller) {
    if (caller.browser) {
      throw ruleFailed('browser-key-management', 'Browser keys cannot manage API keys');
    }
  }

  function assertOwnAccount(caller: Caller, accountId: string) {
    if (!caller.admin && caller.accountId !== accountId) {
      throw new Forbidden("Managing another account's keys needs the admin scope");
    }
  }

  /** A key the caller may see, else 404 (another account's key id is not confirmed). */
  function visible(caller: Caller, row: ApiKeyRow | undefined, id: string): ApiKeyRow {
    if (row === undefined || (!caller.admin && row.account_id !== caller.accountId)) {
      throw new NotFound(`No API key ${id}`);
    }
    return row;
  }

  function checkRules(
    caller: Caller,
    kind: KeyKind,
    fields: {
      scopes: readonly Scope[];
      allowedOrigins: readonly string[] | null;
      allowedResources: readonly string[] | null;
      expiresAt: Date | null;
    },
    expiryChanged: boolean,
  ) {
    const excess = fields.scopes.filter((s) => !caller.admin && !caller.scopes.includes(s));
    if (excess.length > 0) {
      throw new Forbidden(`You cannot grant scopes this credential lacks: ${excess.join(', ')}`);
    }
    if (kind === 'browser') {
      if (fields.allowedOrigins === null || fields.allowedResources === null) {
        throw new InvalidRequest('Browser keys need allowed_origins and allowed_resources');
      }
      if (fields.scopes.some((s) => s !== 'gateway')) {
        throw new InvalidRequest(
          'Browser keys may hold only the gateway scope: they are visible to anyone who opens the page',
        );
      }
    } else if (fields.allowedOrigins !== null) {
      throw new InvalidRequest(
        'allowed_origins applies to browser keys only; backend keys are refused from browsers',
      );
    }
    if (expiryChanged && fields.expiresAt !== null && fields.expiresAt.getTime() <= now()) {
      throw new InvalidRequest('expires_at must be in the future');
    }
  }

  async function issue(
    trx: Transaction<Database>,
    caller: Caller,
    fields: {
      accountId: string;
      appId: string | null;
      kind: KeyKind;
      name: string;
      scopes: readonly Scope[];
      allowedOrigins: readonly string[] | null;
      allowedResources: readonly string[] | null;
      expiresAt: Date | null;
    },
  ): Promise<{ row: ApiKeyRow; secret: string }> {
    const minted = mintKey(fields.kind);
    const row = await insertKey(trx, {
      id: newId('key'),
      account_id: fields.accountId,
      app_id: fields.appId,
      kind: fields.kind,
      name: fields.name,
      scopes: JSON.stringify(fields.scopes),
      allowed_origins:
        fields.allowedOrigins === null ? null : JSON.stringify(fields.allowedOrigins),
      allowed_resources:
        fields.allowedResources === null ? null : JSON.stringify(fields.allowedResources),
      key_hash: secrets.hmac(KEY_HASH_PURPOSE, minted.secret),
      display_prefix: minted.displayPrefix,
      expires_at: fields.expiresAt,
      created_by: caller.actor,
      // From the clock, not the database: the rotation schedule compares it with the clock.
      created_at: clock(),
    });
    await notifyKeyChanged(trx, row.id, 'created');
    return { row, secret: minted.secret };
  }

  return {
    view,

    async create(caller: Caller, input: NewKeyInput): Promise<IssuedKey> {
      assertMayManage(caller);
      const accountId = input.accountId ?? caller.accountId;
      if (accountId === null) throw new InvalidRequest('account_id is required');
      assertOwnAccount(caller, accountId);
      const account = await deps.directory.account(accountId);
      if (account === null) throw new NotFound(`No account ${accountId}`);
      if (input.appId !== undefined && input.appId !== null) {
        // A key bound to an app reports its usage under that app: only the key's own
        // account's apps (for an operator too), or another account would see this usage.
        const owner = await deps.directory.appOwner(input.appId);
        if (owner === null || owner.accountId !== accountId) {
          throw new NotFound(`No app ${input.appId} in account ${accountId}`);
        }
      }
      const fields = {
        accountId,
        appId: input.appId ?? null,
        kind: input.kind,
        name: input.name,
        scopes: dedupe<Scope>(input.scopes ?? ['gateway']),
        allowedOrigins: input.allowedOrigins === undefined ? null : dedupe(input.allowedOrigins),
        allowedResources:
          input.allowedResources === undefined ? null : dedupe(input.allowedResources),
        expiresAt: input.expiresAt ?? null,
      };
      // Issue #18: before the scope rules, so an unconfirmed account hears the real reason.
      if (!account.emailVerified && spends(fields.scopes)) throw new EmailNotVerified();
      checkRules(caller, fields.kind, fields, true);
      return db.transaction().execute(async (trx) => {
        const { row, secret } = await issue(trx, caller, fields);
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'key.create',
          subject: row.id,
          requestId: caller.requestId,
          details: { accountId, kind: row.kind, scopes: fields.scopes, name: row.name },
        });
        return { key: view(toApiKey(row)), secret };
      });
    },

    /**
     * A page of an account's keys, newest first. `cursor` is a `next_cursor` this returned for
     * the same account (any other is refused with 400).
     */
    async list(
      caller: Caller,
      query: { accountId?: string; limit?: number; cursor?: string },
    ): Promise<Page<ApiKeyView>> {
      assertMayManage(caller);
      const target = query.accountId ?? caller.accountId;
      if (target === null) throw new InvalidRequest('account_id is required');
      assertOwnAccount(caller, target);
      const limit = pageLimit(query.limit);
      const after =
        query.cursor === undefined ? null : decodePosition(query.cursor, 'keys', target, 'key');
      const rows = await findKeysByAccount(db, target, { after, limit: limit + 1 });
      return toPage(
        rows,
        limit,
        (position) => encodePosition('keys', target, position),
        (row) => view(toApiKey(row)),
      );
    },

    /** Who owns key `id` (the route guard's ownership check), or null. */
    async owner(id: string): Promise<{ accountId: string } | null> {
      const row = await findKeyById(db, id);
      return row === undefined ? null : { accountId: row.account_id };
    },

    /** A key's account and front-door limit override (all null: none), or null if unknown. */
    async limits(id: string): Promise<{ accountId: string; override: LimitSettings } | null> {
      const row = await findKeyById(db, id);
      if (row === undefined) return null;
      return { accountId: row.account_id, override: parseLimitSettings(row.limits) };
    },

    /**
     * Sets (or, all null, clears) key `id`'s override of the front-door limits. Operators only
     * (the route says so; checked here too): a customer raising its own limits would defeat
     * plans. Audited, and NOTIFYd so every replica's front door applies it at once.
     */
    async setLimits(
      caller: Caller,
      id: string,
      settings: LimitSettings,
    ): Promise<{ accountId: string; override: LimitSettings }> {
      if (!caller.admin) throw new Forbidden("Only an operator may set a key's limits");
      const result = await db.transaction().execute(async (trx) => {
        const row = visible(caller, await findKeyByIdForUpdate(trx, id), id);
        const stored = hasLimitSettings(settings) ? settings : {};
        await updateKeyById(trx, id, { limits: JSON.stringify(stored) });
        await notifyKeyChanged(trx, id);
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'key.limits',
          subject: id,
          requestId: caller.requestId,
          details: { ...settings },
        });
        return { accountId: row.account_id, override: settings };
      });
      return changed(id, result);
    },

    async show(caller: Caller, id: string): Promise<ApiKeyView> {
      assertMayManage(caller);
      return view(toApiKey(visible(caller, await findKeyById(db, id), id)));
    },

    async update(caller: Caller, id: string, patch: KeyPatch): Promise<ApiKeyView> {
      assertMayManage(caller);
      if (patch.scopes !== undefined && spends(patch.scopes)) {
        // An unconfirmed account gets no credential that spends (issue #18). Asked before the
        // transaction: the directory reads through its own connection, which inside a
        // transaction on PGlite's single connection would wait forever.
        const current = visible(caller, await findKeyById(db, id), id);
        if ((await deps.directory.account(current.account_id))?.emailVerified === false) {
          throw new EmailNotVerified();
        }
      }
      const result = await db.transaction().execute(async (trx) => {
        const row = visible(caller, await findKeyByIdForUpdate(trx, id), id);
        if (row.revoked_at !== null) throw new Conflict(`API key ${id} is revoked`);
        const next = {
          scopes: patch.scopes === undefined ? (row.scopes as Scope[]) : dedupe(patch.scopes),
          allowedOrigins:
            patch.allowedOrigins === undefined
              ? row.allowed_origins
              : patch.allowedOrigins && dedupe(patch.allowedOrigins),
          allowedResources:
            patch.allowedResources === undefined
              ? row.allowed_resources
              : patch.allowedResources && dedupe(patch.allowedResources),
          expiresAt: patch.expiresAt === undefined ? row.expires_at : patch.expiresAt,
        };
        checkRules(caller, row.kind, next, patch.expiresAt !== undefined);
        const updated = await updateKeyById(trx, id, {
          ...(patch.name === undefined ? {} : { name: patch.name }),
          scopes: JSON.stringify(next.scopes),
          allowed_origins:
            next.allowedOrigins === null ? null : JSON.stringify(next.allowedOrigins),
          allowed_resources:
            next.allowedResources === null ? null : JSON.stringify(next.allowedResources),
          expires_at: next.expiresAt,
        });
        await notifyKeyChanged(trx, id);
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'key.update',
          subject: id,
          requestId: caller.requestId,
          details: { changed: Object.keys(patch) },
        });
        return view(toApiKey(updated));
      });
      return changed(id, result);
    },

    async revoke(caller: Caller, id: string): Promise<ApiKeyView> {
      assertMayManage(caller);
      const result = await db.transaction().execute(async (trx) => {
        const row = visible(caller, await findKeyByIdForUpdate(trx, id), id);
        // Revoking twice is not an error: the caller's intent already holds.
        if (row.revoked_at !== null) return view(toApiKey(row));
        const updated = await updateKeyById(trx, id, { revoked_at: new Date(now()) });
        await notifyKeyChanged(trx, id);
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'key.revoke',
          subject: id,
          requestId: caller.requestId,
        });
        return view(toApiKey(updated));
      });
      return changed(id, result);
    },

    async rotate(
      caller: Caller,
      id: string,
      input: RotateInput,
    ): Promise<IssuedKey & { previous: ApiKeyView }> {
      assertMayManage(caller);
      const result = await db.transaction().execute(async (trx) => {
        const row = visible(caller, await findKeyByIdForUpdate(trx, id), id);
        const current = view(toApiKey(row));
        if (current.status !== 'active') {
          throw new Conflict(`API key ${id} is ${current.status}; create a new key instead`);
        }
        if (row.replaced_by !== null) {
          throw new Conflict(`API key ${id} was already rotated to ${row.replaced_by}`);
        }
        const fields: Parameters<typeof issue>[2] = {
          accountId: row.account_id,
          appId: row.app_id,
          kind: row.kind,
          name: row.name,
          scopes: row.scopes as Scope[],
          allowedOrigins: row.allowed_origins,
          allowedResources: row.allowed_resources,
          expiresAt: input.expiresAt ?? null,
        };
        checkRules(caller, row.kind, fields, true);
        const { row: created, secret } = await issue(trx, caller, fields);
        // The replacement keeps the operator's limit override (a rotation is not a downgrade).
        if (hasLimitSettings(parseLimitSettings(row.limits))) {
          await updateKeyById(trx, created.id, { limits: JSON.stringify(row.limits) });
        }
        const graceEnd = new Date(now() + input.graceSeconds * 1000);
        const expiresAt =
          row.expires_at !== null && row.expires_at < graceEnd ? row.expires_at : graceEnd;
        const previous = await updateKeyById(trx, id, {
          replaced_by: created.id,
          ...(input.graceSeconds === 0 ? { revoked_at: graceEnd } : { expires_at: expiresAt }),
        });
        await notifyKeyChanged(trx, id);
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'key.rotate',
          subject: id,
          requestId: caller.requestId,
          details: { replacedBy: created.id, graceEndsAt: graceEnd.toISOString() },
        });
        return { key: view(toApiKey(created)), secret, previous: view(toApiKey(previous)) };
      });
      return changed(id, result);
    },
  };
}

function dedupe<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

/** Whether a key with these scopes can spend: what an account with an unconfirmed e-mail
 * address may not hold (issue #18). */
function spends(scopes: readonly Scope[]): boolean {
  return scopes.some((s) => s === 'gateway' || s === 'signer');
}
