// Prometheus metrics. One registry per service instance (no global default registry), so tests
// can build several apps in one process and each /metrics shows only its own.
import { Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  httpRequestDuration: Histogram<'method' | 'route' | 'status'>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const httpRequestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, matched route template and status code',
    labelNames: ['method', 'route', 'status'] as const,
    // From 1 ms (cached key checks) to 60 s (long AI jobs proxied through the front door).
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  return { registry, httpRequestDuration };
}
