// Rate limits for the front door: a token bucket (requests per second, with a burst) and an
// in-flight counter per key, per account and, in anonymous mode, per client IP.
//
// Cluster-wide by sharing (docs/front-door.md#limits): each replica enforces `1/N` of every
// limit, N being the live replicas its heartbeat counts in PostgreSQL (replicas.ts). The hot
// path stays free of database round trips; accuracy holds while the load balancer spreads a
// key's requests evenly. Billing's spend gate remains the cross-replica limit on money.
import { TooManyRequests } from '../platform/errors.ts';
import type { LimitSettings } from '../platform/limits.ts';

/** One subject's limits for the whole cluster; 0 = unlimited. */
export interface LimitRule {
  /** Requests per second; 0 = unlimited. */
  rate: number;
  /** Token-bucket size (requests admitted at once after an idle spell); ≥ 1 when rate > 0. */
  burst: number;
  /** Requests in flight; 0 = unlimited. */
  concurrency: number;
}

export interface LimitSubject {
  /** What is limited, named in the 429 body: `key`, `account` or `client`. */
  scope: string;
  key: string;
  rule: LimitRule;
}

interface Entry {
  tokens: number;
  refilledAt: number;
  inFlight: number;
}

/**
 * The IETF draft's separate fields (draft-ietf-httpapi-ratelimit-headers-07 §3): the quota,
 * what is left of it, and seconds until it is whole again — for the subject closest to its
 * limit, in cluster-wide units.
 */
export interface RateLimitState {
  limit: number;
  remaining: number;
  resetSeconds: number;
}

export interface Admission {
  /** Gives the in-flight slots back (idempotent). */
  release(): void;
  /** The rate state after this request, or null when no subject has a rate limit. */
  state: RateLimitState | null;
}

// Buckets that are full and idle carry no information; beyond this many entries they are
// dropped so memory stays bounded by the number of active callers.
const SWEEP_ABOVE_ENTRIES = 10_000;

export interface Limiter {
  /**
   * Takes one request for every subject (all or nothing) or throws 429 with Retry-After and
   * the RateLimit fields. `replicas` is the live replica count: this replica enforces 1/N of
   * each limit.
   */
  acquire(subjects: readonly LimitSubject[], replicas?: number): Admission;
}

/** This replica's part of a cluster-wide rule. */
interface Share {
  rate: number;
  burst: number;
  concurrency: number;
}

function shareOf(rule: LimitRule, replicas: number): Share {
  return {
    rate: rule.rate / replicas,
    // A bucket under one token would never admit anything: each replica keeps at least one,
    // so with burst < N the cluster may admit up to N at once (documented).
    burst: rule.rate > 0 ? Math.max(1, rule.burst / replicas) : 0,
    // Rounded up for the same reason: the cluster total is at most concurrency + N − 1.
    concurrency: rule.concurrency > 0 ? Math.ceil(rule.concurrency / replicas) : 0,
  };
}

export function createLimiter(now: () => number = () => performance.now()): Limiter {
  const entries = new Map<string, Entry>();

  function entryFor(key: string, share: Share, at: number): Entry {
    let entry = entries.get(key);
    if (entry === undefined) {
      if (entries.size >= SWEEP_ABOVE_ENTRIES) sweep(at);
      entry = { tokens: share.burst, refilledAt: at, inFlight: 0 };
      entries.set(key, entry);
    } else if (share.rate > 0) {
      const elapsedSeconds = (at - entry.refilledAt) / 1000;
      entry.tokens = Math.min(share.burst, entry.tokens + elapsedSeconds * share.rate);
      entry.refilledAt = at;
    }
    return entry;
  }

  function sweep(at: number) {
    for (const [key, entry] of entries) {
      // A bucket idle for 60 s has refilled at any rate ≥ 1/30 per second.
      if (entry.inFlight === 0 && at - entry.refilledAt > 60_000) entries.delete(key);
    }
  }

  return {
    acquire(subjects, replicas = 1) {
      const n = Math.max(1, replicas);
      const at = now();
      const taken: { subject: LimitSubject; share: Share; entry: Entry }[] = [];
      for (const subject of subjects) {
        const { rule } = subject;
        // A subject without limits has nothing to count (no entry, no work per request).
        if (rule.rate > 0 || rule.concurrency > 0) {
          const share = shareOf(rule, n);
          taken.push({ subject, share, entry: entryFor(subject.key, share, at) });
        }
      }
      if (taken.length === 0) return UNLIMITED;
      for (const { subject, share, entry } of taken) {
        const { scope, rule } = subject;
        if (share.rate > 0 && entry.tokens < 1) {
          const waitSeconds = Math.max(1, Math.ceil((1 - entry.tokens) / share.rate));
          throw tooMany(
            scope,
            'rate',
            `More than ${rule.rate} requests per second per ${scope}`,
            waitSeconds,
            stateOf(rule, share, entry.tokens, n),
          );
        }
        if (share.concurrency > 0 && entry.inFlight >= share.concurrency) {
          // The time a slot frees up is unknown; 1 s is the smallest Retry-After there is.
          throw tooMany(
            scope,
            'concurrency',
            `More than ${rule.concurrency} requests at once per ${scope}`,
            1,
            null,
          );
        }
      }
      let state: RateLimitState | null = null;
      for (const { subject, share, entry } of taken) {
        if (share.rate > 0) {
          entry.tokens -= 1;
          const own = stateOf(subject.rule, share, entry.tokens, n);
          if (state === null || own.remaining < state.remaining) state = own;
        }
        entry.inFlight++;
      }
      let released = false;
      return {
        state,
        release() {
          if (released) return;
          released = true;
          for (const { entry } of taken) entry.inFlight--;
        },
      };
    },
  };
}

const UNLIMITED: Admission = Object.freeze({ state: null, release() {} });

/** This replica's bucket, told in cluster units (what the caller's quota is). */
function stateOf(rule: LimitRule, share: Share, tokens: number, replicas: number): RateLimitState {
  const left = Math.max(0, tokens);
  return {
    limit: rule.burst,
    remaining: Math.min(rule.burst, Math.floor(left * replicas)),
    resetSeconds: Math.ceil((share.burst - left) / share.rate),
  };
}

/** The response header fields for `state` (none when nothing is rate-limited). */
export function rateLimitHeaders(state: RateLimitState | null): Record<string, string> {
  if (state === null) return {};
  return {
    'RateLimit-Limit': String(state.limit),
    'RateLimit-Remaining': String(state.remaining),
    'RateLimit-Reset': String(state.resetSeconds),
  };
}

function tooMany(
  scope: string,
  limit: string,
  message: string,
  retryAfterSeconds: number,
  state: RateLimitState | null,
): TooManyRequests {
  return new TooManyRequests(`${message}; retry after ${retryAfterSeconds} s`, {
    headers: { 'Retry-After': String(retryAfterSeconds), ...rateLimitHeaders(state) },
    details: { limit, scope },
  });
}

/** A limit as the settings give it (the level under plans and key overrides). */
export interface DefaultRule {
  rate: number;
  /** null: twice the effective rate. */
  burst: number | null;
  concurrency: number;
}

/**
 * The rule in force: each field from the most specific level that sets it (a key's override,
 * then its plan), else the setting. A burst nobody set is twice the effective rate, so a plan
 * that raises the rate raises the burst with it.
 */
export function effectiveRule(
  defaults: DefaultRule,
  ...levels: readonly (LimitSettings | null)[]
): LimitRule {
  let rate: number | null = null;
  let burst: number | null = null;
  let concurrency: number | null = null;
  for (const level of levels) {
    if (level === null) continue;
    rate ??= level.rate;
    burst ??= level.burst;
    concurrency ??= level.concurrency;
  }
  rate ??= defaults.rate;
  burst ??= defaults.burst ?? rate * 2;
  concurrency ??= defaults.concurrency;
  return { rate, burst: rate > 0 ? Math.max(1, burst) : 0, concurrency };
}
