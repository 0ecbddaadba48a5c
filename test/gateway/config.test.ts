// Front door settings: prices are exact wei, and a bad value names the setting.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config.ts';

describe('front door settings', () => {
  it('parses GATEWAY_PRICES into exact bigint wei, per pipeline and model', () => {
    const config = parseConfig({
      GATEWAY_PRICES: JSON.stringify({
        llm: {
          price_per_unit: '123456789012345678901234567890',
          pixels_per_unit: '1',
          models: { m: { price_per_unit: '5', pixels_per_unit: '2' } },
        },
      }),
    });
    expect(config.gateway.prices.llm!.price_per_unit).toBe(123456789012345678901234567890n);
    expect(config.gateway.prices.llm!.models!.m!.pixels_per_unit).toBe(2n);
  });

  it('refuses bad prices, naming the setting: not JSON, numbers for wei, zero pixels per unit', () => {
    for (const raw of [
      'nope',
      '{"llm":{"price_per_unit":5,"pixels_per_unit":"1"}}',
      '{"llm":{"price_per_unit":"5","pixels_per_unit":"0"}}',
      '{"llm":{"price_per_unit":"-1","pixels_per_unit":"1"}}',
      '{"llm":{"price_per_unit":"1","pixels_per_unit":"1","extra":1}}',
    ]) {
      expect(() => parseConfig({ GATEWAY_PRICES: raw }), raw).toThrow(ConfigError);
      try {
        parseConfig({ GATEWAY_PRICES: raw });
      } catch (error) {
        expect((error as ConfigError).problems[0]).toMatch(/^GATEWAY_PRICES: /);
      }
    }
  });

  it('anonymous mode is off unless an account is named; limits default on', () => {
    const plain = parseConfig({});
    expect(plain.gateway.anonymous).toBeNull();
    expect(plain.gateway.limits.keyRate).toBeGreaterThan(0);
    const anon = parseConfig({ GATEWAY_ANONYMOUS_ACCOUNT: 'acct_public' });
    // No burst set: the limiter uses twice the rate (gateway/limits.ts).
    expect(anon.gateway.anonymous).toEqual({
      accountId: 'acct_public',
      rate: 1,
      burst: null,
      concurrency: 1,
    });
    expect(() => parseConfig({ GATEWAY_ANONYMOUS_ACCOUNT: 'bob' })).toThrow(ConfigError);
  });
});
