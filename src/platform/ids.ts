// Prefixed random ids (`app_…`, `acct_…`, `key_…`) so a human can tell them apart. 128 random
// bits in base62 (22 characters) — unguessable and collision-free at any scale we will see.
import { randomBytes } from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Base62 of `bytes` random bytes, fixed width so ids sort and compare by length. */
export function randomBase62(bytes: number): string {
  let n = BigInt(`0x${randomBytes(bytes).toString('hex')}`);
  const width = Math.ceil((bytes * 8) / Math.log2(62));
  let out = '';
  for (let i = 0; i < width; i++) {
    out = BASE62[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out;
}

export function newId(prefix: string): string {
  return `${prefix}_${randomBase62(16)}`;
}

export function isId(prefix: string, value: string): boolean {
  return new RegExp(`^${prefix}_[0-9A-Za-z]{22}$`).test(value);
}

/**
 * Ids for things made on every request (request ids, the front door's usage event ids): a
 * random per-generator prefix (96 bits, base62) and a counter, `<17 characters>-<base 36>`.
 * Unique like a UUID — two generators share a prefix with odds of 2^-96, and one generator
 * never repeats a count — and a fraction of `randomUUID`'s cost (issue #21). Not
 * unguessable: the next id of a generator is the last one plus one, so never use these
 * where a guess would grant anything (keys, tokens, secrets use `newId` or `randomBytes`).
 */
export function createSequentialIds(): () => string {
  const prefix = `${randomBase62(12)}-`;
  let count = 0;
  return () => prefix + (count++).toString(36);
}
