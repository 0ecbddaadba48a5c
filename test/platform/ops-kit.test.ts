// The operations kit in deploy/: the Prometheus rules parse (YAML, and each expression with
// Prometheus' own PromQL grammar, @prometheus-io/lezer-promql), and every metric a rule or a
// dashboard panel names is one the service really exports on GET /metrics.
import { readFileSync } from 'node:fs';
import { parser } from '@prometheus-io/lezer-promql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';

const RULES = new URL('../../deploy/prometheus/tollhouse-rules.yml', import.meta.url);
const DASHBOARD = new URL('../../deploy/grafana/tollhouse-dashboard.json', import.meta.url);

// Series Prometheus itself makes for every target, not exported by the service.
const SYNTHETIC = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** The metric names an expression selects, or the syntax errors the grammar found. */
function promqlMetrics(expr: string): { metrics: string[]; errors: string[] } {
  const tree = parser.parse(expr);
  const metrics: string[] = [];
  const errors: string[] = [];
  tree.iterate({
    enter(node) {
      if (node.type.isError)
        errors.push(`at ${node.from}: ${expr.slice(node.from, node.from + 30)}`);
      if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector') {
        metrics.push(expr.slice(node.from, node.to));
      }
    },
  });
  return { metrics, errors };
}

function rules(): Rule[] {
  const doc = parseYaml(readFileSync(RULES, 'utf8')) as {
    groups: Array<{ name: string; rules: Rule[] }>;
  };
  return doc.groups.flatMap((g) => g.rules);
}

function dashboardExpressions(): Array<{ panel: string; expr: string }> {
  const doc = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
  };
  return doc.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
  );
}

let t: TestApp;
let exported: Set<string>;

beforeAll(async () => {
  t = await startTestApp();
  const text = await (await fetch(`${t.url}/metrics`)).text();
  exported = new Set();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    exported.add(name!);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) exported.add(name + s);
  }
});
afterAll(async () => {
  await t.close();
});

describe('operations kit (deploy/)', () => {
  it('finds syntax errors and metric names the way the checks below rely on', () => {
    expect(promqlMetrics('sum(rate(a_total{x="y"}[5m])) / on(instance) b > 1')).toEqual({
      metrics: ['a_total', 'b'],
      errors: [],
    });
    expect(promqlMetrics('sum(rate(a_total[5m]) / ').errors).not.toEqual([]);
    expect(promqlMetrics('histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))')).toEqual({
      metrics: ['h_bucket'],
      errors: [],
    });
  });

  it('has alert rules that parse, each with a severity and a summary', () => {
    const all = rules();
    expect(all.length).toBeGreaterThanOrEqual(10);
    for (const rule of all) {
      expect(rule.alert, JSON.stringify(rule)).toMatch(/^Tollhouse[A-Za-z0-9]+$/);
      expect(promqlMetrics(rule.expr).errors, rule.alert).toEqual([]);
      expect(['warning', 'critical'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      if (rule.for !== undefined) expect(rule.for, rule.alert).toMatch(/^\d+[smh]$/);
    }
    // What issue #20 asks the kit to watch (the webhook backlog rule comes with its metrics).
    const watched = all.map((r) => promqlMetrics(r.expr).metrics).flat();
    for (const metric of [
      'tollhouse_signer_deposit_wei',
      'tollhouse_signer_reserve_wei',
      'tollhouse_signer_funding_failed_last_day',
      'tollhouse_stripe_sync_failing_statements',
      'http_request_duration_seconds_count',
      'http_request_duration_seconds_bucket',
      'tollhouse_usage_recorder_buffered_events',
    ]) {
      expect(watched).toContain(metric);
    }
  });

  it('names in rules and dashboard only metrics the service exports', () => {
    const used = [
      ...rules().map((r) => ({ where: `rule ${r.alert}`, expr: r.expr })),
      ...dashboardExpressions().map((d) => ({ where: `panel ${d.panel}`, expr: d.expr })),
    ];
    const unknown: string[] = [];
    for (const { where, expr } of used) {
      const { metrics, errors } = promqlMetrics(expr);
      expect(errors, where).toEqual([]);
      expect(metrics.length, where).toBeGreaterThan(0);
      for (const m of metrics)
        if (!SYNTHETIC.has(m) && !exported.has(m)) unknown.push(`${where}: ${m}`);
    }
    expect(unknown).toEqual([]);
    // The check itself sees a name that is not exported.
    expect(exported.has('tollhouse_no_such_metric')).toBe(false);
    expect(exported.has('http_request_duration_seconds_bucket')).toBe(true);
  });

  it('has a dashboard that Grafana can import (uid, title, panels with queries)', () => {
    const doc = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      uid: string;
      title: string;
      panels: Array<{ id: number; datasource: { type: string } }>;
    };
    expect(doc.uid).toBe('tollhouse');
    expect(new Set(doc.panels.map((p) => p.id)).size).toBe(doc.panels.length);
    for (const p of doc.panels) expect(p.datasource.type).toBe('prometheus');
    expect(dashboardExpressions().length).toBeGreaterThanOrEqual(10);
  });
});
