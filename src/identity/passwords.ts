// Password hashing: scrypt (node:crypto) with a per-account random salt, stored as a PHC-style
// string `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (base64, no padding) so parameters can be raised
// later without invalidating stored hashes.
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

// OWASP Password Storage Cheat Sheet: scrypt N=2^17, r=8, p=1 is the recommended minimum for
// new systems; N=2^15 (32 MiB) keeps one login under ~100 ms on a shared 2-core machine while
// still costing an attacker 32 MiB per guess. Raise LOG_N when hardware allows.
const LOG_N = 15;
const R = 8;
const P = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
// scrypt needs 128 * N * r bytes; Node's default maxmem (32 MiB) is exactly that, so allow headroom.
const MAX_MEM = 64 * 1024 * 1024;

function derive(password: string, salt: Buffer, logN: number, r: number, p: number) {
  return new Promise<Buffer>((resolve, reject) => {
    scrypt(password, salt, KEY_BYTES, { N: 2 ** logN, r, p, maxmem: MAX_MEM }, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, LOG_N, R, P);
  return `$scrypt$ln=${LOG_N},r=${R},p=${P}$${b64(salt)}$${b64(key)}`;
}

const PHC = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

/** True if `password` matches `stored`; false for a malformed stored value. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const match = PHC.exec(stored);
  if (match === null) return false;
  const [, logN, r, p, salt, hash] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const expected = Buffer.from(hash, 'base64');
  const actual = await derive(
    password,
    Buffer.from(salt, 'base64'),
    Number(logN),
    Number(r),
    Number(p),
  );
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** A hash that matches no password, verified when an email is unknown so timing reveals nothing. */
export const DUMMY_PASSWORD_HASH = `$scrypt$ln=${LOG_N},r=${R},p=${P}$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`;

function b64(buffer: Buffer): string {
  return buffer.toString('base64').replace(/=+$/, '');
}
