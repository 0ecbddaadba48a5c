// Exact non-negative-denominator rationals over bigint, as go-livepeer keeps balances and
// prices (Go's big.Rat). Always reduced, denominator > 0.

export interface Rational {
  readonly num: bigint;
  readonly den: bigint;
}

const abs = (a: bigint) => (a < 0n ? -a : a);

function gcd(a: bigint, b: bigint): bigint {
  a = abs(a);
  b = abs(b);
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

export function rat(num: bigint, den = 1n): Rational {
  if (den === 0n) throw new RangeError('zero denominator');
  if (den < 0n) [num, den] = [-num, -den];
  const g = gcd(num, den);
  return g > 1n ? { num: num / g, den: den / g } : { num, den };
}

export const ZERO = rat(0n);

export const add = (a: Rational, b: Rational) => rat(a.num * b.den + b.num * a.den, a.den * b.den);
export const sub = (a: Rational, b: Rational) => rat(a.num * b.den - b.num * a.den, a.den * b.den);
export const mul = (a: Rational, b: Rational) => rat(a.num * b.num, a.den * b.den);
export const div = (a: Rational, b: Rational) => rat(a.num * b.den, a.den * b.num);
export const cmp = (a: Rational, b: Rational) => {
  const d = a.num * b.den - b.num * a.den;
  return d < 0n ? -1 : d > 0n ? 1 : 0;
};
export const max = (a: Rational, b: Rational) => (cmp(a, b) >= 0 ? a : b);

// The operations below give the same reduced values as the ones above with less work: a
// payment's credit and ticket value have denominators of ~256 bits (2²⁵⁶ − 1 over a common
// factor), and the gcd of such numbers was the signer's largest piece of arithmetic.

/**
 * r × n, reduced. With r reduced, gcd(r.num × n, r.den) = gcd(n, r.den): a gcd with a small
 * n (a ticket or unit count) instead of one of two 256-bit numbers.
 */
export function mulInt(r: Rational, n: bigint): Rational {
  if (n === 0n) return ZERO;
  const g = gcd(n, r.den);
  return g === 1n ? { num: r.num * n, den: r.den } : { num: r.num * (n / g), den: r.den / g };
}

/** a + b − c, reduced once: the same value as sub(add(a, b), c) with one gcd instead of two. */
export function addSub(a: Rational, b: Rational, c: Rational): Rational {
  // Equal denominators (the credit and the tickets' value usually share 2²⁵⁶ − 1's factor)
  // add without growing.
  let num = a.den === b.den ? a.num + b.num : a.num * b.den + b.num * a.den;
  let den = a.den === b.den ? a.den : a.den * b.den;
  if (c.den === den) num -= c.num;
  else if (c.den === 1n) num -= c.num * den;
  else {
    num = num * c.den - c.num * den;
    den *= c.den;
  }
  return rat(num, den);
}

/** ⌈(a − b) ÷ c⌉ for c > 0, without reducing the quotient (ceil does not need it). */
export function ceilDivSub(a: Rational, b: Rational, c: Rational): bigint {
  if (c.num <= 0n) throw new RangeError('divisor must be positive');
  const num = (a.num * b.den - b.num * a.den) * c.den;
  const den = a.den * b.den * c.num;
  return ceil({ num, den });
}
export const min = (a: Rational, b: Rational) => (cmp(a, b) <= 0 ? a : b);

/** Smallest integer ≥ r. */
export function ceil(r: Rational): bigint {
  const q = r.num / r.den;
  return r.num > 0n && r.num % r.den !== 0n ? q + 1n : q;
}

/** Go's big.Rat.RatString: "a" when integral, else "a/b". */
export function ratString(r: Rational): string {
  return r.den === 1n ? r.num.toString() : `${r.num}/${r.den}`;
}

/** Go's big.Rat.FloatString(prec): `prec` decimals, the last rounded half away from zero. */
export function floatString(r: Rational, prec: number): string {
  const scale = 10n ** BigInt(prec);
  const n = r.num < 0n ? -r.num : r.num;
  const q = (2n * n * scale + r.den) / (2n * r.den);
  const whole = (q / scale).toString();
  const frac = prec > 0 ? `.${(q % scale).toString().padStart(prec, '0')}` : '';
  return `${r.num < 0n ? '-' : ''}${whole}${frac}`;
}

/** Parses "a", "-a" or "a/b" (as RatString writes); null for anything else. */
export function parseRat(text: string): Rational | null {
  const m = /^(-?\d{1,100})(?:\/(\d{1,100}))?$/.exec(text);
  if (m === null) return null;
  const den = BigInt(m[2] ?? '1');
  return den === 0n ? null : rat(BigInt(m[1]!), den);
}

/**
 * What Go's big.Rat.SetString accepts for a price: "a/b", or a decimal with an optional
 * exponent ("12", "0.5", ".5", "5e-1"), each with an optional sign. Digits and exponent are
 * bounded (a price needs neither 100 digits nor 10^100) so a hostile string cannot make a huge
 * bigint; null for anything else. The caller decides about the sign.
 */
export function parseGoRat(text: string): Rational | null {
  const fraction = /^([+-]?\d{1,100})\/(\d{1,100})$/.exec(text);
  if (fraction !== null) {
    const den = BigInt(fraction[2]!);
    return den === 0n ? null : rat(BigInt(fraction[1]!), den);
  }
  const m = /^([+-]?)(\d{0,100})(?:\.(\d{0,100}))?(?:[eE]([+-]?\d{1,3}))?$/.exec(text);
  if (m === null || (m[2] === '' && (m[3] ?? '') === '')) return null;
  const frac = m[3] ?? '';
  const exp = Number(m[4] ?? '0') - frac.length;
  if (Math.abs(exp) > 100) return null;
  const digits = BigInt(`${m[1]}${m[2] || '0'}${frac}`);
  return exp >= 0 ? rat(digits * 10n ** BigInt(exp)) : rat(digits, 10n ** BigInt(-exp));
}
