import { describe, expect, it } from 'vitest';
import { KEY_PATTERN, mintKey, normalizeOrigin, parseKey } from '../../src/keys/index.ts';

describe('key format', () => {
  it('mints prefixed keys with 192 random bits and a checksum that parses back', () => {
    const backend = mintKey('backend');
    const browser = mintKey('browser');
    expect(backend.secret).toMatch(/^th_sk_[0-9A-Za-z]{39}$/);
    expect(browser.secret).toMatch(/^th_ck_[0-9A-Za-z]{39}$/);
    expect(KEY_PATTERN.test(backend.secret)).toBe(true);
    expect(parseKey(backend.secret)).toEqual({ ok: true, kind: 'backend' });
    expect(parseKey(browser.secret)).toEqual({ ok: true, kind: 'browser' });
    expect(backend.displayPrefix).toBe(backend.secret.slice(0, 12));
    const many = new Set(Array.from({ length: 1000 }, () => mintKey('backend').secret));
    expect(many.size).toBe(1000);
  });

  it('rejects every single-character change by its checksum', () => {
    const { secret } = mintKey('backend');
    let rejected = 0;
    for (let i = 6; i < secret.length; i++) {
      const swapped = secret[i] === 'a' ? 'b' : 'a';
      const mutated = secret.slice(0, i) + swapped + secret.slice(i + 1);
      if (parseKey(mutated).ok === false) rejected++;
    }
    expect(rejected).toBe(secret.length - 6);
    // A browser prefix on a backend key's body changes the checksummed text too.
    expect(parseKey(secret.replace('th_sk_', 'th_ck_'))).toEqual({ ok: false, reason: 'checksum' });
  });

  it('calls hostile strings malformed without throwing', () => {
    const { secret } = mintKey('backend');
    for (const candidate of [
      '',
      'th_',
      'th_sk_',
      secret.slice(0, -1),
      `${secret}x`,
      ` ${secret}`,
      secret.replace(/.$/, '-'),
      'th_xx_' + secret.slice(6),
      'th_sk_' + 'é'.repeat(39),
      'x'.repeat(100_000),
      'th_sk_\u0000' + secret.slice(7),
    ]) {
      expect(parseKey(candidate)).toEqual({ ok: false, reason: 'malformed' });
    }
  });

  it('normalises origins and refuses anything that is not one', () => {
    expect(normalizeOrigin('HTTPS://App.Example.com:443')).toBe('https://app.example.com');
    expect(normalizeOrigin('http://localhost:3000/')).toBe('http://localhost:3000');
    for (const bad of [
      'https://a.example/path',
      'https://user:pw@a.example',
      'ftp://a.example',
      'null',
      'a.example',
      'https://a.example?x=1',
      'javascript:alert(1)',
    ]) {
      expect(normalizeOrigin(bad)).toBeNull();
    }
  });
});
