// The request-duration histogram is tollhouse's own (cheaper to observe than prom-client's,
// issue #21); prom-client's Histogram is the reference for what /metrics shows of it.
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DurationHistogram } from '../../src/platform/metrics.ts';

const NAME = 'http_request_duration_seconds';
const HELP = 'HTTP request duration by method, matched route template and status code';
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

function pair() {
  const reference = new Registry();
  const referenceHistogram = new Histogram({
    name: NAME,
    help: HELP,
    labelNames: ['method', 'route', 'status'] as const,
    buckets: BUCKETS,
    registers: [reference],
  });
  const ours = new Registry();
  const histogram = new DurationHistogram({ name: NAME, help: HELP, buckets: BUCKETS });
  ours.registerMetric(histogram as unknown as Histogram);
  return { reference, referenceHistogram, ours, histogram };
}

// On a bound, between bounds, below the first, past the last, zero, and float sums.
const VALUES = [
  0,
  0.0001,
  0.001,
  0.0010001,
  0.003,
  0.01,
  0.7,
  1,
  2.5,
  59.9,
  60,
  61,
  1e6,
  0.1 + 0.2,
];
const LABELS: Array<[string, string, number]> = [
  ['GET', '/healthz', 200],
  ['POST', '/text-to-image', 200],
  ['POST', '/text-to-image', 401],
  ['GET', 'unmatched', 404],
  ['POST', '/say "hi"\\\n', 500],
];

describe('DurationHistogram', () => {
  it('renders exactly what prom-client renders for the same observations', async () => {
    const { reference, referenceHistogram, ours, histogram } = pair();
    const fixed = histogram.labels('GET', '/healthz', 200);
    let i = 0;
    for (const value of VALUES) {
      for (const [method, route, status] of LABELS) {
        const v = value * (1 + (i++ % 3));
        referenceHistogram.observe({ method, route, status: String(status) }, v);
        if (method === 'GET' && route === '/healthz') fixed.observe(v);
        else histogram.observe(method, route, status, v);
      }
    }
    const text = await ours.metrics();
    expect(text).toBe(await reference.metrics());
    expect(text).toContain(
      'http_request_duration_seconds_bucket{le="0.001",method="GET",route="/healthz",status="200"}',
    );
    expect(await ours.getMetricsAsJSON()).toEqual(await reference.getMetricsAsJSON());
  });

  it('shows no series before the first observation, like prom-client', async () => {
    const { reference, ours } = pair();
    expect(await ours.metrics()).toBe(await reference.metrics());
  });

  it('refuses values that are not finite numbers, as prom-client does', () => {
    const { histogram } = pair();
    expect(() => histogram.observe('GET', '/x', 200, Number.NaN)).toThrow(TypeError);
    expect(() => histogram.observe('GET', '/x', 200, Infinity)).toThrow(TypeError);
  });

  it('keeps one series per label set however it is reached', async () => {
    const { histogram, ours } = pair();
    histogram.labels('GET', '/healthz', 200).observe(0.002);
    histogram.observe('GET', '/healthz', 200, 0.003);
    const text = await ours.metrics();
    expect(text).toMatch(
      /^http_request_duration_seconds_count\{method="GET",route="\/healthz",status="200"\} 2$/m,
    );
  });
});
