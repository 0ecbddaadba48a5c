// The hot path: `th_` credential → principal. Shape and checksum are checked first (no I/O),
// then the HMAC of the key is looked up in an in-process cache, and only on a miss in
// PostgreSQL. Every change to a key NOTIFYs its id on KEYS_CHANNEL; each replica drops that
// entry as the notification arrives, so a revocation or rotation is enforced everywhere within
// the NOTIFY latency (milliseconds), well inside the promised 1 s. A change to an account
// (identity NOTIFYs it; app.ts calls forgetAccount) drops every key of that account the same
// way, so disabling an account refuses its keys at once. A dropped LISTEN connection clears the
// whole cache, and entries also age out after CACHE_TTL_MS as a last resort.
//
// The in-memory cache is indexed by an unkeyed SHA-256 of the key (one-shot `crypto.hash`,
// ~10× cheaper than the HMAC): keys carry 192 random bits, so the digest reveals nothing, and
// it never leaves the process. The HMAC under TOLLHOUSE_SECRET is computed only on a miss, to
// look the key up in PostgreSQL.
import { hash as digestOf, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { CredentialVerifier, Principal, VerifyContext } from '../platform/auth.ts';
import { invalidCredential, ruleFailed } from '../platform/auth.ts';
import type { Scope } from '../platform/auth.ts';
import { hasLimitSettings, parseLimitSettings } from '../platform/limits.ts';
import type { LimitSettings } from '../platform/limits.ts';
import type { Database, DatabaseHandle } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import type { Secrets } from '../platform/secrets.ts';
import { KEY_NAMESPACE, normalizeOrigin, parseKey } from './format.ts';
import { KEYS_CHANNEL, findKeyByHash, findKeyStatusById, updateLastUsed } from './queries.ts';
import type { Clock } from '../platform/clock.ts';
import { systemClock } from '../platform/clock.ts';

/** The HMAC purpose: API keys get their own subkey of TOLLHOUSE_SECRET. */
export const KEY_HASH_PURPOSE = 'api-keys';

// Safety net only (invalidation is by NOTIFY): bounds how long a missed notification without
// a reconnect — which should not happen — could keep a stale entry.
const CACHE_TTL_MS = 5 * 60 * 1000;
// Unknown keys with a valid checksum: remembered briefly so a client retrying a deleted or
// mistyped-but-checksummed key does not query the database each time. Bounded: an attacker
// minting random keys only evicts other negative entries (oldest first), never positive ones.
const NEGATIVE_TTL_MS = 60 * 1000;
const NEGATIVE_MAX = 10_000;
// Key ids changed recently, for the race check in load(); past this many, the check falls
// back to "anything changed" until the next notification.
const CHANGES_MAX = 10_000;

/** A key as its derived tokens see it (by id: the token carries the id, not the key). */
interface KeyStatusEntry {
  accountId: string;
  refused: 'revoked' | 'account disabled' | 'unknown key' | null;
  expiresAtMs: number | null;
  cachedAtMs: number;
}

interface CachedKey {
  id: string;
  /** SHA-256 of the key (hex, as bytes), compared in constant time on every use. */
  digest: Buffer;
  principal: Principal;
  browser: boolean;
  /** Why the key is refused, if it is (revoked, disabled account); expiry is checked per use. */
  refused: 'revoked' | 'account disabled' | null;
  expiresAtMs: number | null;
  cachedAtMs: number;
}

export interface KeyVerifierDeps {
  db: Kysely<Database>;
  listen: DatabaseHandle['listen'];
  secrets: Secrets;
  log: Logger;
  /** Most keys kept in memory (API_KEYS_CACHE_MAX). */
  cacheMax: number;
  /** How often last-use times are written (API_KEYS_FLUSH_SECONDS). */
  lastUsedFlushMs: number;
  clock?: Clock;
  /** Called for each notification after the cache has handled it (CORS origin list). */
  onChange?: (keyId: string | null) => void;
}

export interface KeyVerifier extends CredentialVerifier {
  verify(credential: string, context: VerifyContext): Promise<Principal | null>;
  /** LISTENs for changes and starts the last-use timer. */
  start(): Promise<void>;
  /** Writes buffered last-use times now. */
  flushLastUsed(): Promise<void>;
  /** Stops listening and the timer, and flushes. */
  close(): Promise<void>;
  /** Entries held, for tests and benchmarks. */
  cacheSize(): { positive: number; negative: number };
  /** Drops what this process cached about key `id` (a change it just committed). */
  forget(id: string): void;
  /** Drops every cached key of account `accountId` (its status changed), or everything (null). */
  forgetAccount(accountId: string | null): void;
  /**
   * Why a credential made from key `keyId` (a token-exchange access token) must be refused
   * now — the key is revoked, past its expiry or rotation grace, unknown, or its account is
   * disabled — or null while the key itself would be accepted. Kept current by the same
   * NOTIFYs as the key cache, so a revocation reaches every replica's derived tokens as fast
   * as the key itself.
   */
  keyRefusal(keyId: string): Promise<string | null>;
  /**
   * The front-door limit override of the key behind `principal` (one this verifier made), or
   * null. Read with the principal, so an override change reaches the front door by the same
   * NOTIFY that drops the cached key.
   */
  keyOverride(principal: Principal): LimitSettings | null;
}

export function createKeyVerifier(deps: KeyVerifierDeps): KeyVerifier {
  const { db, secrets, log, cacheMax } = deps;
  const clock = deps.clock ?? systemClock;
  const now = () => clock().getTime();
  const byDigest = new Map<string, CachedKey>();
  const digestById = new Map<string, string>();
  const negative = new Map<string, number>();
  const lastUsed = new Map<string, number>();
  const statusById = new Map<string, KeyStatusEntry>();
  // Keyed by the frozen principal object: it and its override are replaced together.
  const overrides = new WeakMap<Principal, LimitSettings>();
  // A lookup that raced with a change to its key must not cache the row it read: every
  // notification takes a generation number, remembered per key id (and for "everything" on a
  // resync), and a lookup caches only if nothing about its key changed since it started.
  let generation = 0;
  let resetAt = 0;
  let createdAt = 0;
  const changedAt = new Map<string, number>();
  const accountChangedAt = new Map<string, number>();
  let unlisten: (() => Promise<void>) | null = null;
  let timer: NodeJS.Timeout | null = null;

  function onNotification(payload: string | null) {
    generation++;
    if (payload === null || changedAt.size >= CHANGES_MAX) {
      resetAt = generation;
      changedAt.clear();
      accountChangedAt.clear();
    }
    if (payload === null) {
      byDigest.clear();
      digestById.clear();
      negative.clear();
      statusById.clear();
      deps.onChange?.(null);
      return;
    }
    const [change, keyId = ''] = payload.split(':', 2);
    if (change === 'created') {
      // Nothing cached can be stale about a new key, but a lookup that found nothing just
      // before it committed must not remember it as unknown.
      createdAt = generation;
    } else {
      changedAt.set(keyId, generation);
      statusById.delete(keyId);
      const digest = digestById.get(keyId);
      if (digest !== undefined) byDigest.delete(digest);
      digestById.delete(keyId);
    }
    deps.onChange?.(keyId);
  }

  function onAccountChange(accountId: string | null) {
    if (accountId === null) {
      onNotification(null);
      return;
    }
    generation++;
    if (accountChangedAt.size >= CHANGES_MAX) {
      resetAt = generation;
      changedAt.clear();
      accountChangedAt.clear();
    }
    accountChangedAt.set(accountId, generation);
    // A full scan, but account changes are rare (an operator's action) and the cache is
    // bounded by cacheMax: a few milliseconds at worst.
    for (const [digest, entry] of byDigest) {
      if (entry.principal.accountId === accountId) forgetEntry(digest, entry);
    }
    for (const [id, entry] of statusById) {
      if (entry.accountId === accountId) statusById.delete(id);
    }
  }

  async function loadStatus(keyId: string): Promise<KeyStatusEntry> {
    const started = generation;
    const row = await findKeyStatusById(db, keyId);
    const entry: KeyStatusEntry = {
      accountId: row?.account_id ?? '',
      refused:
        row === undefined
          ? 'unknown key'
          : row.revoked_at !== null
            ? 'revoked'
            : row.account_status !== 'active'
              ? 'account disabled'
              : null,
      expiresAtMs: row?.expires_at?.getTime() ?? null,
      cachedAtMs: now(),
    };
    // The same race rule as load(): a row read across a change to its key is not kept.
    if (
      row !== undefined &&
      resetAt <= started &&
      (changedAt.get(keyId) ?? 0) <= started &&
      (accountChangedAt.get(row.account_id) ?? 0) <= started
    ) {
      if (statusById.size >= cacheMax) {
        const oldest = statusById.keys().next().value;
        if (oldest !== undefined) statusById.delete(oldest);
      }
      statusById.set(keyId, entry);
    }
    return entry;
  }

  async function keyRefusal(keyId: string): Promise<string | null> {
    const at = now();
    let entry = statusById.get(keyId);
    if (entry !== undefined && at - entry.cachedAtMs > CACHE_TTL_MS) {
      statusById.delete(keyId);
      entry = undefined;
    }
    entry ??= await loadStatus(keyId);
    if (entry.refused !== null) return entry.refused;
    // A rotated key's grace is its expiry: its derived tokens end with it.
    if (entry.expiresAtMs !== null && at >= entry.expiresAtMs) return 'expired';
    return null;
  }

  function remember(digest: string, entry: CachedKey) {
    if (byDigest.size >= cacheMax) {
      // Oldest inserted first (Map order): a full cache costs a query for cold keys only.
      const oldest = byDigest.keys().next().value;
      if (oldest !== undefined) {
        const old = byDigest.get(oldest);
        byDigest.delete(oldest);
        if (old !== undefined) digestById.delete(old.id);
      }
    }
    byDigest.set(digest, entry);
    digestById.set(entry.id, digest);
  }

  function rememberUnknown(digest: string) {
    if (negative.size >= NEGATIVE_MAX) {
      const oldest = negative.keys().next().value;
      if (oldest !== undefined) negative.delete(oldest);
    }
    negative.set(digest, now() + NEGATIVE_TTL_MS);
  }

  async function load(digest: string, credential: string): Promise<CachedKey | null> {
    const started = generation;
    const row = await findKeyByHash(db, secrets.hmac(KEY_HASH_PURPOSE, credential));
    if (row === undefined) {
      if (resetAt <= started && createdAt <= started) rememberUnknown(digest);
      return null;
    }
    const entry: CachedKey = {
      id: row.id,
      digest: Buffer.from(digest, 'latin1'),
      browser: row.kind === 'browser',
      refused:
        row.revoked_at !== null
          ? 'revoked'
          : row.account_status !== 'active'
            ? 'account disabled'
            : null,
      expiresAtMs: row.expires_at?.getTime() ?? null,
      cachedAtMs: now(),
      principal: Object.freeze({
        via: 'api_key' as const,
        accountId: row.account_id,
        appId: row.app_id,
        keyId: row.id,
        clientId: null,
        endUserId: null,
        scopes: Object.freeze([...row.scopes]) as readonly Scope[],
        allowedOrigins:
          row.allowed_origins === null ? null : Object.freeze([...row.allowed_origins]),
        allowedResources:
          row.allowed_resources === null ? null : Object.freeze([...row.allowed_resources]),
      }),
    };
    const override = parseLimitSettings(row.limits);
    if (hasLimitSettings(override)) overrides.set(entry.principal, Object.freeze(override));
    if (
      resetAt <= started &&
      (changedAt.get(row.id) ?? 0) <= started &&
      (accountChangedAt.get(row.account_id) ?? 0) <= started
    ) {
      remember(digest, entry);
    }
    return entry;
  }

  function refuse(context: VerifyContext, reason: string, keyId?: string): never {
    (context.log ?? log).info({ reason, keyId }, `API key refused: ${reason}`);
    throw invalidCredential();
  }

  async function verify(credential: string, context: VerifyContext): Promise<Principal | null> {
    if (!credential.startsWith(KEY_NAMESPACE)) return null;
    const digest = digestOf('sha256', credential);
    const at = now();
    let entry = byDigest.get(digest);
    if (entry !== undefined && at - entry.cachedAtMs > CACHE_TTL_MS) {
      forgetEntry(digest, entry);
      entry = undefined;
    }
    if (entry === undefined) {
      // Shape and checksum only when the digest is not cached: a cached key passed them when
      // it was loaded, and the same digest is the same key (a regex and a CRC32 saved per hit).
      const parsed = parseKey(credential);
      if (!parsed.ok) {
        refuse(
          context,
          parsed.reason === 'checksum'
            ? 'checksum does not match (the key was truncated or mistyped)'
            : 'not a tollhouse key (wrong length or characters)',
        );
      }
      const unknownUntil = negative.get(digest);
      if (unknownUntil !== undefined && unknownUntil > at) refuse(context, 'unknown key');
      entry = (await load(digest, credential)) ?? undefined;
      if (entry === undefined) refuse(context, 'unknown key');
    }
    // The map matched the digest already; comparing it again in constant time keeps the
    // decision independent of how the lookup structure compares strings.
    const presented = Buffer.from(digest, 'latin1');
    if (presented.length !== entry.digest.length || !timingSafeEqual(presented, entry.digest)) {
      refuse(context, 'unknown key');
    }
    if (entry.refused !== null) refuse(context, entry.refused, entry.id);
    if (entry.expiresAtMs !== null && at >= entry.expiresAtMs) {
      refuse(context, 'expired', entry.id);
    }
    checkOrigin(entry, context.origin);
    lastUsed.set(entry.id, at);
    return entry.principal;
  }

  function forgetEntry(digest: string, entry: CachedKey) {
    byDigest.delete(digest);
    digestById.delete(entry.id);
  }

  async function flushLastUsed() {
    if (lastUsed.size === 0) return;
    const uses = [...lastUsed].map(([id, ms]) => [id, new Date(ms)] as const);
    lastUsed.clear();
    // One statement per 1,000 keys keeps the parameter count far below PostgreSQL's 65,535.
    for (let i = 0; i < uses.length; i += 1_000) {
      await updateLastUsed(db, uses.slice(i, i + 1_000));
    }
  }

  return {
    verify,
    flushLastUsed,
    keyOverride: (principal) => overrides.get(principal) ?? null,
    async start() {
      unlisten = await deps.listen(KEYS_CHANNEL, onNotification);
      timer = setInterval(() => {
        flushLastUsed().catch((error: unknown) =>
          log.warn({ err: error }, 'could not record API key last use'),
        );
      }, deps.lastUsedFlushMs);
      timer.unref();
    },
    async close() {
      if (timer !== null) clearInterval(timer);
      timer = null;
      await unlisten?.();
      unlisten = null;
      await flushLastUsed();
    },
    cacheSize: () => ({ positive: byDigest.size, negative: negative.size }),
    forget: (id) => onNotification(`changed:${id}`),
    forgetAccount: onAccountChange,
    keyRefusal,
  };
}

function checkOrigin(entry: CachedKey, origin: string | null): void {
  if (!entry.browser) {
    if (origin !== null) {
      throw ruleFailed(
        'backend-key-in-browser',
        'Backend keys must not be used from a browser (the request has an Origin header); use a browser key (th_ck_…)',
      );
    }
    return;
  }
  if (origin === null) {
    throw ruleFailed(
      'browser-key-needs-origin',
      'Browser keys work only from a web page: the request has no Origin header',
    );
  }
  const normalized = normalizeOrigin(origin);
  if (normalized === null || !entry.principal.allowedOrigins?.includes(normalized)) {
    throw ruleFailed(
      'browser-key-origin',
      `This browser key does not allow the origin ${normalized ?? 'of this request'}`,
    );
  }
}
