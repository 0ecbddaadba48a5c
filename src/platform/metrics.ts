// Prometheus metrics. One registry per service instance (no global default registry), so tests
// can build several apps in one process and each /metrics shows only its own.
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Metric } from 'prom-client';

export interface Metrics {
  registry: Registry;
  httpRequestDuration: DurationHistogram;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const httpRequestDuration = new DurationHistogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, matched route template and status code',
    // From 1 ms (cached key checks) to 60 s (long AI jobs proxied through the front door).
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  });
  // The registry takes any object with a name, help, type and get() (prom-client's
  // lib/registry.js); its typings name only prom-client's own classes.
  registry.registerMetric(httpRequestDuration as unknown as Metric);
  return { registry, httpRequestDuration };
}

/** One label set's share of a histogram. */
export interface HistogramSample {
  observe(seconds: number): void;
}

type Labels = { method: string; route: string; status: string };

/** One line of the exposition, as prom-client's Histogram gives it to the registry. */
interface ExportedValue {
  labels: Record<string, string | number>;
  sharedLabels?: Labels;
  value: number;
  metricName: string;
  exemplar?: null;
}

interface ExportedMetric {
  name: string;
  help: string;
  type: 'histogram';
  values: ExportedValue[];
  aggregator: 'sum';
}

class Series implements HistogramSample {
  readonly labels: Labels;
  /** Observations per bucket, not cumulative (summed when scraped). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  readonly #bounds: readonly number[];
  constructor(labels: Labels, bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length);
  }
  observe(seconds: number): void {
    if (!Number.isFinite(seconds)) throw new TypeError(`Value is not a valid number: ${seconds}`);
    // Binary search for the first bound >= seconds; past the last bound only +Inf counts it.
    const bounds = this.#bounds;
    let low = 0;
    let high = bounds.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (seconds <= bounds[mid]!) high = mid;
      else low = mid + 1;
    }
    if (low < bounds.length) this.counts[low]! += 1;
    this.sum += seconds;
    this.count += 1;
  }
}

/**
 * The `http_request_duration_seconds` histogram, observed on every request. prom-client's
 * Histogram validates and hashes the label object on every `observe`, even on a labelled
 * child, and its timer allocates closures and arrays: a few per cent of the CPU of a
 * `/healthz` or a proxied request (issue #21). Here a label set is looked up in nested maps
 * (no string is built) and an observation is a binary search and three adds. prom-client's
 * registry still renders it: `get()` returns what prom-client's Histogram returns, so
 * `/metrics` is byte for byte the same (test/platform/metrics.test.ts compares them).
 */
export class DurationHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly #bounds: readonly number[];
  // In first-observed order, as prom-client lists them.
  readonly #series: Series[] = [];
  // route → method → status → series.
  readonly #index = new Map<string, Map<string, Map<number, Series>>>();

  constructor(options: { name: string; help: string; buckets: readonly number[] }) {
    this.name = options.name;
    this.help = options.help;
    this.#bounds = [...options.buckets].sort((a, b) => a - b);
  }

  /** The series of one label set, to keep when the labels never change (a fixed answer). */
  labels(method: string, route: string, status: number): HistogramSample {
    let methods = this.#index.get(route);
    if (methods === undefined) this.#index.set(route, (methods = new Map()));
    let statuses = methods.get(method);
    if (statuses === undefined) methods.set(method, (statuses = new Map()));
    let series = statuses.get(status);
    if (series === undefined) {
      series = new Series({ method, route, status: String(status) }, this.#bounds);
      statuses.set(status, series);
      this.#series.push(series);
    }
    return series;
  }

  observe(method: string, route: string, status: number, seconds: number): void {
    this.labels(method, route, status).observe(seconds);
  }

  reset(): void {
    this.#series.length = 0;
    this.#index.clear();
  }

  /** The form prom-client's registry renders (prom-client's Histogram#getForPromString). */
  getForPromString(): ExportedMetric {
    const bucketName = `${this.name}_bucket`;
    const values: ExportedValue[] = [];
    for (const series of this.#series) {
      const sharedLabels = series.labels;
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += series.counts[i]!;
        values.push({
          labels: { le: this.#bounds[i]! },
          sharedLabels,
          value: cumulative,
          metricName: bucketName,
          exemplar: null,
        });
      }
      values.push(
        {
          labels: { le: '+Inf' },
          sharedLabels,
          value: series.count,
          metricName: bucketName,
          exemplar: null,
        },
        { labels: {}, sharedLabels, value: series.sum, metricName: `${this.name}_sum` },
        { labels: {}, sharedLabels, value: series.count, metricName: `${this.name}_count` },
      );
    }
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    };
  }

  /** The JSON form (Registry#getMetricsAsJSON): each value's labels in one object. */
  get(): ExportedMetric {
    const data = this.getForPromString();
    data.values = data.values.map(({ sharedLabels, ...rest }) => ({
      ...rest,
      labels: { ...rest.labels, ...sharedLabels },
    }));
    return data;
  }
}
