// Pure pricing: which price applies to a usage line, what it charges, and wei → USD. Exact
// integer arithmetic only; each amount is rounded once, UP, at the place documented here
// (docs/metering-and-billing.md): a statement line's charge, and a line's wei → USD conversion.

export type PriceCurrency = 'wei' | 'usd_micros';

export interface Price {
  /** '*' matches anything. */
  pipeline: string;
  modelId: string;
  unit: string;
  currency: PriceCurrency;
  /** `amount` (wei or USD micro-dollars) per `perUnits` units. */
  amount: bigint;
  perUnits: bigint;
}

/** What a line was priced at: a plan price, or `cost` (the events' own fee_wei). */
export interface AppliedPrice {
  currency: PriceCurrency | 'cost';
  amount: bigint;
  perUnits: bigint;
}

export const AT_COST: AppliedPrice = { currency: 'cost', amount: 1n, perUnits: 1n };

/** ETH/USD as Chainlink reports it: `answer / 10^decimals` dollars per ether. */
export interface EthUsdRate {
  answer: bigint;
  decimals: number;
  /** `fixed` (BILLING_ETH_USD_RATE) or `chainlink:<feed address>`. */
  source: string;
  /** When the rate was last updated at its source. */
  updatedAt: Date;
}

const WEI_PER_ETH = 10n ** 18n;
const MICROS_PER_USD = 10n ** 6n;

export function ceilDiv(numerator: bigint, denominator: bigint): bigint {
  if (numerator < 0n || denominator <= 0n) throw new RangeError('ceilDiv: out of range');
  return (numerator + denominator - 1n) / denominator;
}

/** USD micro-dollars for `wei` at `rate`, rounded up to a whole micro-dollar. */
export function weiToUsdMicros(wei: bigint, rate: EthUsdRate): bigint {
  return ceilDiv(wei * rate.answer * MICROS_PER_USD, WEI_PER_ETH * 10n ** BigInt(rate.decimals));
}

/**
 * The most specific price for a line: exact pipeline and model, then the pipeline with any
 * model, then any pipeline with the model, then the plan's catch-all; the unit must match or
 * be '*'. Null: no price — the line is billed at cost.
 */
export function findPrice(
  prices: readonly Price[],
  line: { pipeline: string; modelId: string; unit: string },
): Price | null {
  let best: Price | null = null;
  let bestScore = -1;
  for (const p of prices) {
    if (p.pipeline !== '*' && p.pipeline !== line.pipeline) continue;
    if (p.modelId !== '*' && p.modelId !== line.modelId) continue;
    if (p.unit !== '*' && p.unit !== line.unit) continue;
    const score =
      (p.pipeline !== '*' ? 4 : 0) + (p.modelId !== '*' ? 2 : 0) + (p.unit !== '*' ? 1 : 0);
    if (score > bestScore) {
      best = p;
      bestScore = score;
    }
  }
  return best;
}

export interface LineCharge {
  price: AppliedPrice;
  /** The charge in wei (wei prices and `cost`), null for USD prices. */
  chargeWei: bigint | null;
  chargeUsdMicros: bigint;
}

/** Charges one aggregated line: ceil(quantity × amount / perUnits), then to USD if in wei. */
export function chargeLine(
  prices: readonly Price[],
  line: { pipeline: string; modelId: string; unit: string; quantity: bigint; feeWei: bigint },
  rate: EthUsdRate,
): LineCharge {
  const price = findPrice(prices, line);
  if (price === null) {
    return {
      price: AT_COST,
      chargeWei: line.feeWei,
      chargeUsdMicros: weiToUsdMicros(line.feeWei, rate),
    };
  }
  const charge = ceilDiv(line.quantity * price.amount, price.perUnits);
  const applied = { currency: price.currency, amount: price.amount, perUnits: price.perUnits };
  return price.currency === 'wei'
    ? { price: applied, chargeWei: charge, chargeUsdMicros: weiToUsdMicros(charge, rate) }
    : { price: applied, chargeWei: null, chargeUsdMicros: charge };
}

export interface StatementTotals {
  usageUsdMicros: bigint;
  monthlyFeeUsdMicros: bigint;
  includedUsdMicros: bigint;
  includedAppliedUsdMicros: bigint;
  creditsAppliedUsdMicros: bigint;
  totalUsdMicros: bigint;
}

/**
 * Fee + usage − included usage (up to the usage), then prepaid credit (up to what is due).
 * `balanceUsdMicros` is the ledger balance before this statement.
 */
export function statementTotals(input: {
  usageUsdMicros: bigint;
  monthlyFeeUsdMicros: bigint;
  includedUsdMicros: bigint;
  balanceUsdMicros: bigint;
  /**
   * A prepaid month is settled from the balance in full, even past zero (the overshoot the
   * gate allows): nothing is left due, so nothing is invoiced; a negative balance carries over.
   */
  prepaid?: boolean;
}): StatementTotals {
  const includedApplied =
    input.includedUsdMicros < input.usageUsdMicros ? input.includedUsdMicros : input.usageUsdMicros;
  const subtotal = input.monthlyFeeUsdMicros + input.usageUsdMicros - includedApplied;
  const available = input.balanceUsdMicros > 0n ? input.balanceUsdMicros : 0n;
  const credits = input.prepaid === true ? subtotal : available < subtotal ? available : subtotal;
  return {
    usageUsdMicros: input.usageUsdMicros,
    monthlyFeeUsdMicros: input.monthlyFeeUsdMicros,
    includedUsdMicros: input.includedUsdMicros,
    includedAppliedUsdMicros: includedApplied,
    creditsAppliedUsdMicros: credits,
    totalUsdMicros: subtotal - credits,
  };
}

/** `12.345678` dollars ↔ micro-dollars, exact; at most 6 decimals. */
export function parseUsd(value: string): bigint {
  const match = /^(\d{1,30})(?:\.(\d{1,6}))?$/.exec(value);
  if (match === null) throw new RangeError(`not a USD amount with at most 6 decimals: ${value}`);
  return BigInt(match[1]!) * MICROS_PER_USD + BigInt((match[2] ?? '').padEnd(6, '0'));
}

export function formatUsd(micros: bigint): string {
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const whole = abs / MICROS_PER_USD;
  const frac = (abs % MICROS_PER_USD).toString().padStart(6, '0');
  return `${negative ? '-' : ''}${whole}.${frac}`;
}

/** A decimal rate such as `3150.25` → Chainlink form (answer, decimals), exact. */
export function parseDecimalRate(value: string): { answer: bigint; decimals: number } {
  const match = /^(\d{1,12})(?:\.(\d{1,18}))?$/.exec(value);
  if (match === null) throw new RangeError(`not a decimal rate: ${value}`);
  const frac = match[2] ?? '';
  return { answer: BigInt(`${match[1]}${frac}`), decimals: frac.length };
}

/** `YYYY-MM` ↔ month boundaries (UTC). */
export function monthStart(month: string): Date {
  return new Date(`${month}-01T00:00:00Z`);
}

export function addMonths(month: string, n: number): string {
  const [y, m] = month.split('-').map(Number) as [number, number];
  const d = new Date(Date.UTC(y, m - 1 + n, 1));
  return d.toISOString().slice(0, 7);
}

export function monthOfDate(date: Date): string {
  return date.toISOString().slice(0, 7);
}

export const MONTH_PATTERN = /^\d{4}-(0[1-9]|1[0-2])$/;
