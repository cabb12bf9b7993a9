import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { DbHandle } from "../../server/db/handle.js";
import { exportBusinessMetrics } from "../../server/metrics/business.js";
import { createMetrics } from "../../server/metrics.js";
import { parseExposition } from "../helpers/prometheus-text.js";
import { startTestServer } from "../helpers/test-server.js";
import { metricNamesOf } from "./promql.js";

// deploy/grafana/metal-dashboard.json, deploy/prometheus/alerts.yaml and docs/metrics.md name only metrics the
// server exports, and between them cover every business metric (server/metrics/business.ts).
const file = (path: string) => readFileSync(fileURLToPath(new URL(`../../${path}`, import.meta.url)), "utf8");

/** The metric families a running server's /metrics declares (# TYPE lines, with or without samples). */
let exported: Map<string, string>;
/** The families server/metrics/business.ts registers. */
let business: string[];

beforeAll(async () => {
  const server = await startTestServer();
  const res = await fetch(new URL("/metrics", server.url));
  exported = parseExposition(await res.text()).types;
  const metrics = createMetrics();
  const before = new Set(metrics.registry.getMetricsAsArray().map((m) => m.name));
  exportBusinessMetrics(metrics, undefined as unknown as DbHandle, { replicaId: "r", daemonSessions: () => [], waitStreams: () => 0 });
  business = metrics.registry
    .getMetricsAsArray()
    .map((m) => m.name)
    .filter((n) => !before.has(n));
});

/** A name the server exports: a family, or a histogram's/summary's series. */
function isExported(name: string): boolean {
  if (exported.has(name)) return true;
  const base = name.replace(/_(bucket|sum|count)$/, "");
  return base !== name && ["histogram", "summary"].includes(exported.get(base) ?? "");
}

interface Panel {
  title?: string;
  type: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

function dashboardExpressions(): { where: string; expr: string }[] {
  const dashboard = JSON.parse(file("deploy/grafana/metal-dashboard.json")) as { panels: Panel[]; templating: { list: { name: string; query?: string | { query: string } }[] } };
  const out: { where: string; expr: string }[] = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}"`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating.list) {
    const q = typeof v.query === "string" ? v.query : v.query?.query;
    if (q && v.name !== "datasource") out.push({ where: `variable $${v.name}`, expr: q });
  }
  return out;
}

function alertRules(): { alert: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] {
  const rules = parse(file("deploy/prometheus/alerts.yaml")) as { groups: { name: string; rules: { alert: string; expr: string }[] }[] };
  return rules.groups.flatMap((g) => g.rules);
}

describe("metric name extraction", () => {
  it("finds metrics and skips functions, labels, grouping, ranges, variables and numbers", () => {
    expect(metricNamesOf('sum by (partition) (rate(metal_a_total{outcome="x", size=~"$size"}[5m])) > 1e3 unless on (partition) metal_b > 0')).toEqual(["metal_a_total", "metal_b"]);
    expect(metricNamesOf('label_values(metal_machines{partition=~"$partition"}, size)')).toEqual(["metal_machines"]);
    expect(metricNamesOf("time() - max without (instance) (metal_c)")).toEqual(["metal_c"]);
  });
});

describe("deploy/grafana/metal-dashboard.json", () => {
  it("queries only metrics the server exports", () => {
    const exprs = dashboardExpressions();
    expect(exprs.length).toBeGreaterThan(10);
    for (const { where, expr } of exprs) {
      const names = metricNamesOf(expr);
      expect(names.length, `${where}: ${expr}`).toBeGreaterThan(0);
      for (const n of names) expect(isExported(n), `${where} uses ${n}, which /metrics does not export`).toBe(true);
    }
  });

  it("shows every business metric", () => {
    const used = new Set(dashboardExpressions().flatMap((e) => metricNamesOf(e.expr)));
    expect(business.length).toBeGreaterThan(10);
    for (const name of business) expect(used.has(name), `${name} is on no panel`).toBe(true);
  });

  it("is a dashboard Grafana imports: unique panel ids, a grid position each, the Prometheus data source variable", () => {
    const dashboard = JSON.parse(file("deploy/grafana/metal-dashboard.json"));
    expect(dashboard.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    expect(dashboard.templating.list.find((v: { name: string }) => v.name === "datasource")).toMatchObject({ type: "datasource", query: "prometheus" });
    const ids = (dashboard.panels as (Panel & { id: number; gridPos: object })[]).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) expect(p.gridPos).toMatchObject({ h: expect.any(Number), w: expect.any(Number), x: expect.any(Number), y: expect.any(Number) });
  });
});

describe("deploy/prometheus/alerts.yaml", () => {
  it("alerts only on metrics the server exports, each rule with a severity and a summary", () => {
    const rules = alertRules();
    expect(rules.length).toBeGreaterThan(5);
    for (const r of rules) {
      expect(r.alert, JSON.stringify(r)).toMatch(/^Metal[A-Za-z]+$/);
      expect(["critical", "warning", "info"]).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      if (r.for !== undefined) expect(r.for, r.alert).toMatch(/^\d+[smh]$/);
      const names = metricNamesOf(r.expr);
      expect(names.length, r.alert).toBeGreaterThan(0);
      for (const n of names) expect(isExported(n), `${r.alert} uses ${n}, which /metrics does not export`).toBe(true);
    }
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
  });

  it("passes promtool check rules where promtool is installed", (ctx) => {
    const run = spawnSync("promtool", ["check", "rules", fileURLToPath(new URL("../../deploy/prometheus/alerts.yaml", import.meta.url))], { encoding: "utf8" });
    if (run.error) ctx.skip("promtool is not installed here: the rule file is checked by the other tests only");
    expect(run.status, run.stdout + run.stderr).toBe(0);
  });
});

describe("docs/metrics.md", () => {
  it("documents every business metric and names only exported ones", () => {
    const doc = file("docs/metrics.md");
    for (const name of business) expect(doc, `${name} is not documented`).toContain(`\`${name}\``);
    for (const m of doc.matchAll(/`(metal_[a-z0-9_]+)/g)) expect(isExported(m[1]!), `docs/metrics.md names ${m[1]}, which /metrics does not export`).toBe(true);
  });
});
