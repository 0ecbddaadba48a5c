// The API key format, pure (no I/O): `th_sk_` (backend) or `th_ck_` (browser), 33 base62
// characters of randomness (192 bits, above the 128-bit floor), then a 6-character base62
// CRC32 of everything before it. The checksum is GitHub's token idea: a secret scanner can
// tell a real tollhouse key from a look-alike offline, and the verifier refuses a mistyped
// or truncated key without a database round trip.
import { crc32 } from 'node:zlib';
import { randomBase62 } from '../platform/ids.ts';

export const KEY_KINDS = ['backend', 'browser'] as const;
export type KeyKind = (typeof KEY_KINDS)[number];

const PREFIX_BY_KIND: Record<KeyKind, string> = { backend: 'th_sk_', browser: 'th_ck_' };
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
// 24 random bytes → 33 base62 characters (ceil(192 / log2 62)).
const RANDOM_BYTES = 24;
const RANDOM_CHARS = 33;
// 62^6 ≈ 5.7e10 > 2^32: six characters hold any CRC32.
const CHECKSUM_CHARS = 6;
// Shown in listings so people can tell their keys apart: the kind prefix and 6 random
// characters (≈36 of the 192 bits — the rest stays unguessable).
const DISPLAY_RANDOM_CHARS = 6;

/** Every credential this verifier claims starts with this; anything else is someone else's. */
export const KEY_NAMESPACE = 'th_';

export const KEY_PATTERN = new RegExp(
  `^th_(sk|ck)_[0-9A-Za-z]{${RANDOM_CHARS}}[0-9A-Za-z]{${CHECKSUM_CHARS}}$`,
);

function base62Fixed(value: number, width: number): string {
  let n = value;
  let out = '';
  for (let i = 0; i < width; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

export function checksum(body: string): string {
  return base62Fixed(crc32(body), CHECKSUM_CHARS);
}

export interface MintedKey {
  kind: KeyKind;
  /** The full key: shown once, never stored. */
  secret: string;
  /** Safe to store and show: `th_sk_AbC123`. */
  displayPrefix: string;
}

export function mintKey(kind: KeyKind): MintedKey {
  const body = `${PREFIX_BY_KIND[kind]}${randomBase62(RANDOM_BYTES)}`;
  const secret = `${body}${checksum(body)}`;
  return { kind, secret, displayPrefix: displayPrefix(secret) };
}

export function displayPrefix(secret: string): string {
  return secret.slice(0, PREFIX_BY_KIND.backend.length + DISPLAY_RANDOM_CHARS);
}

export type ParsedKey =
  { ok: true; kind: KeyKind } | { ok: false; reason: 'malformed' | 'checksum' };

/** Shape and checksum of a candidate key; says why it is not one. */
export function parseKey(candidate: string): ParsedKey {
  if (!KEY_PATTERN.test(candidate)) return { ok: false, reason: 'malformed' };
  const split = candidate.length - CHECKSUM_CHARS;
  if (checksum(candidate.slice(0, split)) !== candidate.slice(split)) {
    return { ok: false, reason: 'checksum' };
  }
  return { ok: true, kind: candidate.startsWith(PREFIX_BY_KIND.browser) ? 'browser' : 'backend' };
}

/**
 * `scheme://host[:port]` in canonical form (lower case, default port dropped), as browsers send
 * it in the Origin header; null when `value` is not an origin (paths, credentials, other
 * schemes). `null` — the opaque origin of sandboxed frames — is never an allowed origin.
 */
export function normalizeOrigin(value: string): string | null {
  if (!/^https?:\/\/[^/?#@\s]+\/?$/i.test(value) || !URL.canParse(value)) return null;
  const url = new URL(value);
  return url.origin === 'null' ? null : url.origin;
}
