// The ETH/USD rate: a Chainlink feed read with the real ethers client over real HTTP from a
// tiny JSON-RPC server that answers eth_call with ABI-encoded data (ethers' AbiCoder); the
// fixed rate; and the exact pricing arithmetic.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { AbiCoder, Interface } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RateUnavailable,
  chargeLine,
  createRateSource,
  parseDecimalRate,
  statementTotals,
  weiToUsdMicros,
} from '../../src/billing/index.ts';

const FEED = '0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419';
const feed = new Interface([
  'function decimals() view returns (uint8)',
  'function latestRoundData() view returns (uint80, int256, uint256, uint256, uint80)',
]);
const NOW = new Date('2026-11-26T12:00:00Z');
const nowSeconds = BigInt(NOW.getTime() / 1000);
let round = {
  roundId: 10n,
  answer: 315025000000n,
  updatedAt: nowSeconds - 60n,
  answeredInRound: 10n,
};
const calls: string[] = [];
let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const requests = JSON.parse(body) as
        | Array<{ id: number; method: string; params: unknown[] }>
        | { id: number; method: string; params: unknown[] };
      const answer = (r: { id: number; method: string; params: unknown[] }) => {
        calls.push(r.method);
        if (r.method === 'eth_chainId') return { jsonrpc: '2.0', id: r.id, result: '0x1' };
        if (r.method === 'eth_call') {
          const call = r.params[0] as { to: string; data: string };
          if (call.to.toLowerCase() !== FEED.toLowerCase())
            return { jsonrpc: '2.0', id: r.id, result: '0x' };
          const selector = call.data.slice(0, 10);
          const coder = AbiCoder.defaultAbiCoder();
          if (selector === feed.getFunction('decimals')!.selector) {
            return { jsonrpc: '2.0', id: r.id, result: coder.encode(['uint8'], [8]) };
          }
          if (selector === feed.getFunction('latestRoundData')!.selector) {
            return {
              jsonrpc: '2.0',
              id: r.id,
              result: coder.encode(
                ['uint80', 'int256', 'uint256', 'uint256', 'uint80'],
                [
                  round.roundId,
                  round.answer,
                  round.updatedAt,
                  round.updatedAt,
                  round.answeredInRound,
                ],
              ),
            };
          }
        }
        return { jsonrpc: '2.0', id: r.id, error: { code: -32601, message: 'method not found' } };
      };
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(Array.isArray(requests) ? requests.map(answer) : answer(requests)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('Chainlink ETH/USD feed', () => {
  it('reads latestRoundData() and decimals() and keeps the answer exact', async () => {
    const source = createRateSource(
      { fixed: null, feedAddress: FEED, rpcUrl: url, maxAgeSeconds: 3600 },
      () => NOW,
    );
    const rate = await source.current();
    expect(rate).toEqual({
      answer: 315025000000n,
      decimals: 8,
      source: `chainlink:${FEED}`,
      updatedAt: new Date(Number(nowSeconds - 60n) * 1000),
    });
    expect(calls).toContain('eth_call');
    // 1 ETH at $3150.25 = 3,150,250,000 micro-dollars.
    expect(weiToUsdMicros(10n ** 18n, rate)).toBe(3_150_250_000n);
    source.close();
  });

  it('refuses a stale, non-positive or incomplete answer instead of guessing', async () => {
    const source = createRateSource(
      { fixed: null, feedAddress: FEED, rpcUrl: url, maxAgeSeconds: 3600 },
      () => NOW,
    );
    round = { ...round, updatedAt: nowSeconds - 3601n };
    await expect(source.current()).rejects.toThrow(/stale/);
    round = { ...round, updatedAt: nowSeconds, answer: 0n };
    await expect(source.current()).rejects.toThrow(/non-positive/);
    round = { ...round, answer: 1n, answeredInRound: 9n };
    await expect(source.current()).rejects.toThrow(/incomplete round/);
    await expect(source.current()).rejects.toBeInstanceOf(RateUnavailable);
    source.close();
  });

  it('fails with RateUnavailable when the node is unreachable or nothing is configured', async () => {
    const down = createRateSource({
      fixed: null,
      feedAddress: FEED,
      rpcUrl: 'http://127.0.0.1:9',
      maxAgeSeconds: 3600,
    });
    await expect(down.current()).rejects.toBeInstanceOf(RateUnavailable);
    down.close();
    const none = createRateSource({
      fixed: null,
      feedAddress: null,
      rpcUrl: null,
      maxAgeSeconds: 3600,
    });
    await expect(none.current()).rejects.toThrow(/No ETH\/USD rate is configured/);
  });
});

describe('fixed rate and pricing arithmetic', () => {
  it('parses a fixed rate exactly and prefers it over a feed', async () => {
    expect(parseDecimalRate('3150.25')).toEqual({ answer: 315025n, decimals: 2 });
    expect(parseDecimalRate('0.000000000000000001')).toEqual({ answer: 1n, decimals: 18 });
    expect(() => parseDecimalRate('1e3')).toThrow();
    const source = createRateSource({
      fixed: '2000',
      feedAddress: FEED,
      rpcUrl: url,
      maxAgeSeconds: 1,
    });
    expect(await source.current()).toMatchObject({ answer: 2000n, decimals: 0, source: 'fixed' });
  });

  it('rounds each conversion and each line once, up', () => {
    const rate = { answer: 3n, decimals: 0, source: 'fixed', updatedAt: NOW };
    // 1 wei at $3/ETH is 3e-12 micro-dollars: charged as 1 micro-dollar, never 0.
    expect(weiToUsdMicros(1n, rate)).toBe(1n);
    expect(weiToUsdMicros(0n, rate)).toBe(0n);
    const prices = [
      {
        pipeline: 'llm',
        modelId: '*',
        unit: 'tokens',
        currency: 'usd_micros' as const,
        amount: 1n,
        perUnits: 3n,
      },
      {
        pipeline: '*',
        modelId: '*',
        unit: '*',
        currency: 'wei' as const,
        amount: 10n,
        perUnits: 1n,
      },
      {
        pipeline: 'llm',
        modelId: 'big',
        unit: 'tokens',
        currency: 'usd_micros' as const,
        amount: 5n,
        perUnits: 1n,
      },
    ];
    const line = (pipeline: string, modelId: string, quantity: bigint) => ({
      pipeline,
      modelId,
      unit: 'tokens',
      quantity,
      feeWei: 99n,
    });
    expect(chargeLine(prices, line('llm', 'small', 10n), rate)).toMatchObject({
      chargeUsdMicros: 4n,
      chargeWei: null,
    });
    expect(chargeLine(prices, line('llm', 'big', 10n), rate).chargeUsdMicros).toBe(50n);
    expect(chargeLine(prices, line('upscale', 'x', 10n), rate)).toMatchObject({ chargeWei: 100n });
    expect(chargeLine([], line('upscale', 'x', 10n), rate)).toMatchObject({
      chargeWei: 99n,
      price: { currency: 'cost' },
    });
  });

  it('applies included usage up to the usage, then credit up to what is due', () => {
    expect(
      statementTotals({
        usageUsdMicros: 5n,
        monthlyFeeUsdMicros: 10n,
        includedUsdMicros: 8n,
        balanceUsdMicros: 100n,
      }),
    ).toEqual({
      usageUsdMicros: 5n,
      monthlyFeeUsdMicros: 10n,
      includedUsdMicros: 8n,
      includedAppliedUsdMicros: 5n,
      creditsAppliedUsdMicros: 10n,
      totalUsdMicros: 0n,
    });
    expect(
      statementTotals({
        usageUsdMicros: 50n,
        monthlyFeeUsdMicros: 0n,
        includedUsdMicros: 8n,
        balanceUsdMicros: -7n,
      }).totalUsdMicros,
    ).toBe(42n);
  });
});
