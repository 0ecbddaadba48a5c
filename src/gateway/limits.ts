// Rate limits for the front door: a token bucket (requests per second, burst twice the rate)
// and an in-flight counter per key, per account and, in anonymous mode, per client IP.
//
// In-process per replica (docs/front-door.md): N replicas allow up to N× the configured
// rates. That keeps the hot path free of database round trips; billing's spend gate is the
// cross-replica limit on money.
import { TooManyRequests } from '../platform/errors.ts';

export interface LimitRule {
  /** Requests per second; 0 = unlimited. */
  rate: number;
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

// Buckets that are full and idle carry no information; beyond this many entries they are
// dropped so memory stays bounded by the number of active callers.
const SWEEP_ABOVE_ENTRIES = 10_000;

export interface Limiter {
  /**
   * Takes one request for every subject (all or nothing) or throws 429 with Retry-After.
   * Returns the release function to call once the request is over.
   */
  acquire(subjects: readonly LimitSubject[]): () => void;
}

export function createLimiter(now: () => number = () => performance.now()): Limiter {
  const entries = new Map<string, Entry>();

  function entryFor(key: string, rule: LimitRule, at: number): Entry {
    let entry = entries.get(key);
    if (entry === undefined) {
      if (entries.size >= SWEEP_ABOVE_ENTRIES) sweep(at);
      entry = { tokens: burst(rule), refilledAt: at, inFlight: 0 };
      entries.set(key, entry);
    } else if (rule.rate > 0) {
      const elapsedSeconds = (at - entry.refilledAt) / 1000;
      entry.tokens = Math.min(burst(rule), entry.tokens + elapsedSeconds * rule.rate);
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
    acquire(subjects) {
      const at = now();
      const taken: { scope: string; rule: LimitRule; entry: Entry }[] = [];
      for (const { scope, key, rule } of subjects) {
        // A subject without limits has nothing to count (no entry, no work per request).
        if (rule.rate > 0 || rule.concurrency > 0) {
          taken.push({ scope, rule, entry: entryFor(key, rule, at) });
        }
      }
      if (taken.length === 0) return NOTHING_TO_RELEASE;
      for (const { scope, rule, entry } of taken) {
        if (rule.rate > 0 && entry.tokens < 1) {
          const waitSeconds = Math.max(1, Math.ceil((1 - entry.tokens) / rule.rate));
          throw tooMany(
            scope,
            'rate',
            `More than ${rule.rate} requests per second per ${scope}`,
            waitSeconds,
          );
        }
        if (rule.concurrency > 0 && entry.inFlight >= rule.concurrency) {
          // The time a slot frees up is unknown; 1 s is the smallest Retry-After there is.
          throw tooMany(
            scope,
            'concurrency',
            `More than ${rule.concurrency} requests at once per ${scope}`,
            1,
          );
        }
      }
      for (const { rule, entry } of taken) {
        if (rule.rate > 0) entry.tokens -= 1;
        entry.inFlight++;
      }
      let released = false;
      return () => {
        if (released) return;
        released = true;
        for (const { entry } of taken) entry.inFlight--;
      };
    },
  };
}

const NOTHING_TO_RELEASE = () => {};

function burst(rule: LimitRule): number {
  return rule.rate * 2;
}

function tooMany(
  scope: string,
  limit: string,
  message: string,
  retryAfterSeconds: number,
): TooManyRequests {
  return new TooManyRequests(`${message}; retry after ${retryAfterSeconds} s`, {
    headers: { 'Retry-After': String(retryAfterSeconds) },
    details: { limit, scope },
  });
}
