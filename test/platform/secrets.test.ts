import { describe, expect, it } from 'vitest';
import { isId, newId } from '../../src/platform/ids.ts';
import { createSecrets } from '../../src/platform/secrets.ts';

const ROOT = 'a'.repeat(64);

describe('encryption at rest', () => {
  it('round-trips, and binds the ciphertext to its purpose, context and root secret', () => {
    const box = createSecrets(ROOT).box('signing-keys');
    const sealed = box.seal('private key material', 'sk_1');
    expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]+$/);
    expect(sealed).not.toContain('private');
    expect(box.open(sealed, 'sk_1')).toBe('private key material');
    expect(box.seal('same', 'x')).not.toBe(box.seal('same', 'x')); // fresh nonce each time

    expect(() => box.open(sealed, 'sk_2')).toThrow();
    expect(() => createSecrets(ROOT).box('other-purpose').open(sealed, 'sk_1')).toThrow();
    expect(() => createSecrets('b'.repeat(64)).box('signing-keys').open(sealed, 'sk_1')).toThrow();
    const tampered = sealed.slice(0, -2) + (sealed.endsWith('A') ? 'BB' : 'AA');
    expect(() => box.open(tampered, 'sk_1')).toThrow();
    expect(() => box.open('v0.abc', 'sk_1')).toThrow(/unknown format/);
  });

  it('computes keyed hashes that differ per purpose and per root secret', () => {
    const secrets = createSecrets(ROOT);
    const a = secrets.hmac('api-keys', 'th_sk_123');
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(secrets.hmac('api-keys', 'th_sk_123')).toBe(a);
    expect(secrets.hmac('client-secrets', 'th_sk_123')).not.toBe(a);
    expect(createSecrets('c'.repeat(64)).hmac('api-keys', 'th_sk_123')).not.toBe(a);
  });

  it('refuses an empty root secret', () => {
    expect(() => createSecrets('')).toThrow(/empty/);
  });
});

describe('ids', () => {
  it('are prefixed, 22 base62 characters, and unique', () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => newId('key')));
    expect(ids.size).toBe(10_000);
    for (const id of [...ids].slice(0, 100)) expect(isId('key', id)).toBe(true);
    expect(isId('key', 'acct_0000000000000000000000')).toBe(false);
    expect(isId('key', 'key_short')).toBe(false);
  });
});
