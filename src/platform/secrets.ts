// Encryption at rest and keyed hashes, all derived from TOLLHOUSE_SECRET. Each purpose gets its
// own subkey (HKDF-SHA256 with the purpose as `info`), so a key used to hash API keys can never
// decrypt an OIDC signing key.
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  hkdfSync,
  randomBytes,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';

// AES-256-GCM: 12-byte nonce (NIST SP 800-38D recommendation), 16-byte tag.
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
// Sealed values carry a version so the scheme can change without a flag day.
const VERSION = 'v1';

export interface SecretBox {
  /** Encrypts `plaintext`; `context` (e.g. a row id) is authenticated but not stored. */
  seal(plaintext: string, context?: string): string;
  open(sealed: string, context?: string): string;
}

export interface Secrets {
  /** A box whose key is specific to `purpose`. */
  box(purpose: string): SecretBox;
  /** HMAC-SHA256 of `value` under the `purpose` subkey, hex. */
  hmac(purpose: string, value: string): string;
  /** HMAC-SHA256 of the concatenated `parts` under the `purpose` subkey, 32 bytes. */
  hmacBytes(purpose: string, parts: readonly Uint8Array[]): Buffer;
}

/**
 * A sealed value did not open: it was sealed under another TOLLHOUSE_SECRET (the usual cause:
 * a replica or a restart started with a different one), or it was changed. At start-up this is
 * a configuration error, reported as one line.
 */
export class SealedValueUnreadable extends Error {
  constructor(cause: unknown) {
    super(
      'a stored secret could not be decrypted: TOLLHOUSE_SECRET is not the one it was sealed with (every replica and restart must use the same TOLLHOUSE_SECRET)',
      { cause },
    );
    this.name = 'SealedValueUnreadable';
  }
}

function subkey(root: string, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', root, 'tollhouse', purpose, 32));
}

export function createSecrets(root: string): Secrets {
  if (root.length === 0) throw new Error('TOLLHOUSE_SECRET is empty');
  // KeyObjects, not Buffers: createHmac imports a Buffer key on every call, which makes an
  // HMAC about 4× slower (it is on the API key verification path).
  const hmacKeys = new Map<string, KeyObject>();
  const hmacKey = (purpose: string) => {
    let key = hmacKeys.get(purpose);
    if (key === undefined) {
      key = createSecretKey(subkey(root, `hmac:${purpose}`));
      hmacKeys.set(purpose, key);
    }
    return key;
  };
  return {
    box(purpose) {
      const key = subkey(root, `box:${purpose}`);
      return {
        seal(plaintext, context = '') {
          const nonce = randomBytes(NONCE_BYTES);
          const cipher = createCipheriv('aes-256-gcm', key, nonce);
          cipher.setAAD(Buffer.from(context));
          const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
          const sealed = Buffer.concat([nonce, cipher.getAuthTag(), body]);
          return `${VERSION}.${sealed.toString('base64url')}`;
        },
        open(sealed, context = '') {
          const [version, payload] = sealed.split('.');
          if (version !== VERSION || payload === undefined) {
            throw new Error('sealed value has an unknown format');
          }
          const raw = Buffer.from(payload, 'base64url');
          const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, NONCE_BYTES));
          decipher.setAAD(Buffer.from(context));
          decipher.setAuthTag(raw.subarray(NONCE_BYTES, NONCE_BYTES + TAG_BYTES));
          // final() throws if the tag does not match: wrong secret, wrong context or tampering.
          try {
            return Buffer.concat([
              decipher.update(raw.subarray(NONCE_BYTES + TAG_BYTES)),
              decipher.final(),
            ]).toString('utf8');
          } catch (error) {
            throw new SealedValueUnreadable(error);
          }
        },
      };
    },
    hmac(purpose, value) {
      return createHmac('sha256', hmacKey(purpose)).update(value).digest('hex');
    },
    hmacBytes(purpose, parts) {
      const mac = createHmac('sha256', hmacKey(purpose));
      for (const part of parts) mac.update(part);
      return mac.digest();
    },
  };
}
