// Fixed-window counters per key (an IP, an email), in process memory: each replica limits on
// its own, so N replicas allow up to N times the limit. Good enough to stop password guessing
// from one source; a shared limiter can replace it behind the same interface.

export interface RateLimiter {
  /** Counts one hit for `key`; returns seconds to wait if over the limit, else 0. */
  hit(key: string): number;
  /** False when the limit is 0 (off): callers may skip working out the key. */
  readonly enabled: boolean;
}

// Bound memory under a flood of distinct keys (spoofed IPs, random emails).
const MAX_KEYS = 100_000;

export function createRateLimiter(limitPerWindow: number, windowMs = 60_000): RateLimiter {
  const windows = new Map<string, { count: number; resetAt: number }>();
  return {
    enabled: limitPerWindow !== 0,
    hit(key) {
      if (limitPerWindow === 0) return 0; // 0 disables the limit
      const now = Date.now();
      let entry = windows.get(key);
      if (entry === undefined || entry.resetAt <= now) {
        if (windows.size >= MAX_KEYS) {
          for (const [k, e] of windows) if (e.resetAt <= now) windows.delete(k);
          if (windows.size >= MAX_KEYS) windows.clear();
        }
        entry = { count: 0, resetAt: now + windowMs };
        windows.set(key, entry);
      }
      entry.count += 1;
      return entry.count > limitPerWindow ? Math.ceil((entry.resetAt - now) / 1000) : 0;
    },
  };
}
