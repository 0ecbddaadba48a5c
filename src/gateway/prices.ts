// Fees from GATEWAY_PRICES until billing's plans exist: a model's own price, else the
// pipeline's, else free. The rounding rule is money.ts's feeWei (up, to a whole wei).
import type { GatewayPrices } from '../config.ts';
import { feeWei } from '../platform/money.ts';

export function priceFor(
  prices: GatewayPrices,
  pipeline: string,
  modelId: string | null,
): { pricePerUnit: bigint; pixelsPerUnit: bigint } | null {
  const entry = Object.hasOwn(prices, pipeline) ? prices[pipeline] : undefined;
  if (entry === undefined) return null;
  const model =
    modelId !== null && entry.models !== undefined && Object.hasOwn(entry.models, modelId)
      ? entry.models[modelId]
      : undefined;
  const chosen = model ?? entry;
  return { pricePerUnit: chosen.price_per_unit, pixelsPerUnit: chosen.pixels_per_unit };
}

export function feeFor(
  prices: GatewayPrices,
  pipeline: string,
  modelId: string | null,
  units: bigint,
): bigint {
  const price = priceFor(prices, pipeline, modelId);
  return price === null ? 0n : feeWei(units, price.pricePerUnit, price.pixelsPerUnit);
}
