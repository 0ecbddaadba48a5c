// Money helpers. Wei are bigint in code and numeric(78,0) in SQL (both drivers return numeric
// as a decimal string); a JS number never holds money.

const DECIMAL_INTEGER = /^(0|[1-9]\d{0,77})$/;

/** A non-negative integer in decimal (as SQL returns numeric(78,0)) → bigint. */
export function parseWei(value: string): bigint {
  if (!DECIMAL_INTEGER.test(value)) throw new RangeError(`not a non-negative integer: ${value}`);
  return BigInt(value);
}

export function isWeiString(value: string): boolean {
  return DECIMAL_INTEGER.test(value);
}

/**
 * The fee for `units` at `pricePerUnit` wei per `pixelsPerUnit` units, as go-livepeer prices
 * work (LIVEPEER.md §6), rounded UP to a whole wei. This is the one place a fee is rounded:
 * at most 1 wei per event in the operator's favour, so billed usage never falls below what
 * orchestrators were paid for it.
 */
export function feeWei(units: bigint, pricePerUnit: bigint, pixelsPerUnit: bigint): bigint {
  if (units < 0n || pricePerUnit < 0n || pixelsPerUnit <= 0n) {
    throw new RangeError('units and price must be non-negative and pixelsPerUnit positive');
  }
  const product = units * pricePerUnit;
  return (product + pixelsPerUnit - 1n) / pixelsPerUnit;
}
