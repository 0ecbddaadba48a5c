// The console's pure pieces: money formatting, where sign-in may return to, dollar
// parsing, and the chart's text alternative.
import { describe, expect, it } from 'vitest';
import {
  dollarsToMicros,
  eth,
  safeReturnTo,
  stackedBarChart,
  usd,
} from '../../src/console/index.ts';

describe('money', () => {
  it('shows micro-dollars with cents always and further digits only when not zero', () => {
    expect(usd('0')).toBe('$0.00');
    expect(usd('25000000')).toBe('$25.00');
    expect(usd('12500000')).toBe('$12.50');
    expect(usd('125')).toBe('$0.000125');
    expect(usd(-1_500_000n)).toBe('-$1.50');
    expect(usd('123456789012345678901234567890')).toBe('$123,456,789,012,345,678,901,234.56789');
  });

  it('shows wei as ETH without losing precision', () => {
    expect(eth('1')).toBe('0.000000000000000001 ETH');
    expect(eth(3_500_000_000_000_000n)).toBe('0.0035 ETH');
  });

  it('parses dollar amounts typed by an operator into micro-dollars, refusing anything else', () => {
    expect(dollarsToMicros('25')).toBe(25_000_000n);
    expect(dollarsToMicros('$1,234.5')).toBe(1_234_500_000n);
    expect(dollarsToMicros('0.000001')).toBe(1n);
    for (const bad of ['', '-5', '1e3', '1.0000001', '1.2.3', 'abc', '9999999999999']) {
      expect(dollarsToMicros(bad), bad).toBeNull();
    }
  });
});

describe('safeReturnTo', () => {
  it('keeps console paths and refuses everything that could leave the console', () => {
    expect(safeReturnTo('/console/usage?pipeline=llm&from=2026-01-01')).toBe(
      '/console/usage?pipeline=llm&from=2026-01-01',
    );
    expect(safeReturnTo('/console')).toBe('/console');
    for (const bad of [
      '//evil.example',
      'https://evil.example/console',
      '/console//evil.example',
      '/consolex',
      '/console/\\evil',
      '/oidc/auth',
      '/console/a b',
      undefined,
      ['/console'],
    ]) {
      expect(safeReturnTo(bad), String(bad)).toBe('/console');
    }
  });
});

describe('stackedBarChart', () => {
  it('draws one bar segment per non-zero value and repeats every number in a table', () => {
    const chart = stackedBarChart({
      id: 'c',
      title: 'Requests <per> day',
      days: ['2026-11-01', '2026-11-02'],
      series: [
        { name: 'llm', values: [1, 0] },
        { name: '<img>', values: [2, 3] },
      ],
      format: (v) => String(v),
    }).value;
    expect(chart.match(/<rect\s+x=/g)).toHaveLength(3);
    expect(chart).toContain('role="img"');
    expect(chart).toContain('Requests &lt;per&gt; day');
    expect(chart).not.toContain('<img>');
    // Day 2: <img> 3, llm 0, total 3 (series are ranked by their totals, largest first).
    expect(chart.replace(/>\s+</g, '><')).toContain(
      '<th scope="row">2026-11-02</th><td class="num">3</td><td class="num">0</td><td class="num">3</td>',
    );
  });
});
