// The signer's settings: parsed to exact types, bad combinations reported by name.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config.ts';

function problemsOf(env: Record<string, string>): string[] {
  try {
    parseConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

const FUNDED = {
  ETH_RPC_URL: 'https://arb1.example.com/v2/secret-api-key',
  SIGNER_KEYSTORE_FILE: '/run/keystore.json',
  SIGNER_PASSWORD: 'pw',
  SIGNER_TARGET_DEPOSIT_WEI: '100000000000000000',
  SIGNER_TARGET_RESERVE_WEI: '50000000000000000',
  SIGNER_MAX_PER_TX_WEI: '200000000000000000',
  SIGNER_MAX_PER_DAY_WEI: '1000000000000000000',
};

describe('signer settings', () => {
  it('default to a disabled signer on Arbitrum One', () => {
    const { signer } = parseConfig({});
    expect(signer).toEqual({
      rpcUrl: null,
      controller: '0xD8E8328501E9645d16Cf49539efC04f734606ee4',
      keystoreFile: null,
      password: null,
      pollIntervalMs: 5000,
      refreshIntervalMs: 30000,
      funding: null,
      gasReserveWei: 10n ** 16n,
      signingThreads: 0,
      // No signer-only listener unless SIGNER_PORT is set.
      listen: null,
      // go-livepeer's defaults: -maxTicketEV 3e12, -maxTotalEV 2e13, -depositMultiplier 1,
      // -maxPricePerUnit 0 (no ceiling) per -pixelsPerUnit 1.
      remote: {
        maxTicketEvWei: 3_000_000_000_000n,
        maxTotalEvWei: 20_000_000_000_000n,
        depositMultiplier: 1n,
        maxPricePerUnitWei: 0n,
        maxPricePixelsPerUnit: 1n,
        orchestrators: [],
        sharedCredentials: [],
      },
    });
  });

  it('read shared gateway credentials as a list of ids and refuse anything else by name', () => {
    expect(
      parseConfig({ SIGNER_SHARED_CREDENTIALS: ' key_abc , client-1,' }).signer.remote
        .sharedCredentials,
    ).toEqual(['key_abc', 'client-1']);
    expect(() => parseConfig({ SIGNER_SHARED_CREDENTIALS: 'key abc' })).toThrow(
      /SIGNER_SHARED_CREDENTIALS/,
    );
    expect(() => parseConfig({ SIGNER_SIGNING_THREADS: '99' })).toThrow(/SIGNER_SIGNING_THREADS/);
  });

  it('open the signer-only listener on SIGNER_PORT, on SIGNER_HOST (default all interfaces)', () => {
    expect(parseConfig({ SIGNER_PORT: '8081' }).signer.listen).toEqual({
      host: '0.0.0.0',
      port: 8081,
    });
    expect(parseConfig({ SIGNER_PORT: '9000', SIGNER_HOST: '10.0.0.5' }).signer.listen).toEqual({
      host: '10.0.0.5',
      port: 9000,
    });
    expect(() => parseConfig({ SIGNER_PORT: '0' })).toThrow(/SIGNER_PORT/);
  });

  it('parse wei amounts exactly as bigint', () => {
    const { signer } = parseConfig({
      ...FUNDED,
      SIGNER_TARGET_DEPOSIT_WEI: '123456789012345678901234567890',
      SIGNER_FUND_FOR: '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC',
    });
    expect(signer.funding).toEqual({
      targetDepositWei: 123456789012345678901234567890n,
      targetReserveWei: 50000000000000000n,
      refillThresholdPercent: 50,
      maxPerTxWei: 200000000000000000n,
      maxPerDayWei: 1000000000000000000n,
      fundFor: '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC',
    });
  });

  it('reject amounts that are not whole wei, and bad addresses, by name', () => {
    expect(
      problemsOf({
        ...FUNDED,
        SIGNER_TARGET_DEPOSIT_WEI: '0.1',
        SIGNER_MAX_PER_TX_WEI: '-5',
        SIGNER_FUND_FOR: '0x123',
        LIVEPEER_CONTROLLER: 'arbitrum',
        SIGNER_REFILL_THRESHOLD_PERCENT: '0',
      }),
    ).toEqual([
      'LIVEPEER_CONTROLLER: expected an Ethereum address (0x and 40 hex digits) (got "arbitrum")',
      'SIGNER_TARGET_DEPOSIT_WEI: expected an amount in wei (a whole number, no decimal point) (got "0.1")',
      'SIGNER_REFILL_THRESHOLD_PERCENT: expected an integer from 1 to 100 (got "0")',
      'SIGNER_MAX_PER_TX_WEI: expected an amount in wei (a whole number, no decimal point) (got "-5")',
      'SIGNER_FUND_FOR: expected an Ethereum address (0x and 40 hex digits) (got "0x123")',
    ]);
  });

  it('require the caps, a chain and a keystore with the funding targets', () => {
    expect(problemsOf({ SIGNER_TARGET_DEPOSIT_WEI: '1', SIGNER_TARGET_RESERVE_WEI: '1' })).toEqual([
      'SIGNER_MAX_PER_TX_WEI: required when the funding targets are set',
      'SIGNER_MAX_PER_DAY_WEI: required when the funding targets are set',
      'ETH_RPC_URL: required when the funding targets are set',
      'SIGNER_KEYSTORE_FILE: required when the funding targets are set',
    ]);
    expect(problemsOf({ ...FUNDED, SIGNER_TARGET_RESERVE_WEI: '' })).toEqual([
      'SIGNER_TARGET_RESERVE_WEI: set both SIGNER_TARGET_DEPOSIT_WEI and SIGNER_TARGET_RESERVE_WEI, or neither',
    ]);
    expect(problemsOf({ SIGNER_FUND_FOR: '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC' })).toEqual([
      'SIGNER_FUND_FOR: needs the funding targets (SIGNER_TARGET_DEPOSIT_WEI, SIGNER_TARGET_RESERVE_WEI)',
    ]);
  });

  it('need a password with a keystore, read from SIGNER_PASSWORD_FILE, and never echo secrets', () => {
    expect(problemsOf({ SIGNER_KEYSTORE_FILE: '/k.json' })).toEqual([
      'SIGNER_PASSWORD: required with SIGNER_KEYSTORE_FILE (set SIGNER_PASSWORD_FILE to a file holding it)',
    ]);
    const { signer } = parseConfig(
      { SIGNER_KEYSTORE_FILE: '/k.json', SIGNER_PASSWORD_FILE: '/run/secrets/pw' },
      () => 'from the file\n',
    );
    expect(signer.password).toBe('from the file');
    const problems = problemsOf({ ETH_RPC_URL: 'wss://arb1.example.com/v2/secret-api-key' });
    expect(problems).toEqual(['ETH_RPC_URL: expected an http:// or https:// URL']);
  });
});
