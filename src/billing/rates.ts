// The ETH/USD rate that turns wei into dollars: a fixed rate the operator sets
// (BILLING_ETH_USD_RATE), or a Chainlink price feed read through ETH_RPC_URL. There is no
// built-in fallback price: without a usable rate, pricing refuses (RateUnavailable).
import { Contract, JsonRpcProvider, Network } from 'ethers';
import { RateUnavailable } from './errors.ts';
import { parseDecimalRate } from './pricing.ts';
import type { EthUsdRate } from './pricing.ts';
import type { Clock } from '../platform/clock.ts';
import { systemClock } from '../platform/clock.ts';

// Chainlink AggregatorV3Interface (docs.chain.link/data-feeds/api-reference).
const AGGREGATOR_ABI = [
  'function decimals() view returns (uint8)',
  'function latestRoundData() view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)',
];

export interface RateSource {
  current(): Promise<EthUsdRate>;
  close(): void;
}

export interface RateConfig {
  /** Decimal dollars per ether, e.g. `3150.25`; wins over the feed when both are set. */
  fixed: string | null;
  feedAddress: string | null;
  rpcUrl: string | null;
  /** A feed answer updated longer ago than this is refused. */
  maxAgeSeconds: number;
}

export function createRateSource(config: RateConfig, clock: Clock = systemClock): RateSource {
  if (config.fixed !== null) {
    const { answer, decimals } = parseDecimalRate(config.fixed);
    return {
      async current() {
        return { answer, decimals, source: 'fixed', updatedAt: clock() };
      },
      close() {},
    };
  }
  if (config.feedAddress !== null && config.rpcUrl !== null) {
    return createChainlinkRate(config.rpcUrl, config.feedAddress, config.maxAgeSeconds, clock);
  }
  return {
    async current() {
      throw new RateUnavailable(
        'No ETH/USD rate is configured: set BILLING_ETH_USD_RATE, or BILLING_ETH_USD_FEED with ETH_RPC_URL',
      );
    },
    close() {},
  };
}

function createChainlinkRate(
  rpcUrl: string,
  feedAddress: string,
  maxAgeSeconds: number,
  clock: Clock,
): RateSource {
  // A static network: only eth_call is sent (no chain-id detection, whose failure ethers
  // would retry and log forever); the feed address already names the chain's contract.
  const network = new Network('price-feed', 0n);
  const provider = new JsonRpcProvider(rpcUrl, network, { staticNetwork: network });
  const feed = new Contract(feedAddress, AGGREGATOR_ABI, provider);
  let decimals: number | null = null;
  return {
    async current() {
      let round: { roundId: bigint; answer: bigint; updatedAt: bigint; answeredInRound: bigint };
      try {
        decimals ??= Number(await feed.getFunction('decimals').staticCall());
        const result = await feed.getFunction('latestRoundData').staticCall();
        round = {
          roundId: result[0] as bigint,
          answer: result[1] as bigint,
          updatedAt: result[3] as bigint,
          answeredInRound: result[4] as bigint,
        };
      } catch (error) {
        throw new RateUnavailable('The ETH/USD price feed could not be read', { cause: error });
      }
      const source = `chainlink:${feedAddress}`;
      if (round.answer <= 0n) throw new RateUnavailable(`${source} answered a non-positive price`);
      if (round.answeredInRound < round.roundId) {
        throw new RateUnavailable(`${source} answered from an incomplete round`);
      }
      const ageSeconds = BigInt(Math.floor(clock().getTime() / 1000)) - round.updatedAt;
      if (round.updatedAt === 0n || ageSeconds > BigInt(maxAgeSeconds)) {
        throw new RateUnavailable(
          `${source} is stale: last updated ${ageSeconds} s ago (limit ${maxAgeSeconds} s)`,
        );
      }
      return {
        answer: round.answer,
        decimals,
        source,
        updatedAt: new Date(Number(round.updatedAt) * 1000),
      };
    },
    close() {
      provider.destroy();
    },
  };
}
