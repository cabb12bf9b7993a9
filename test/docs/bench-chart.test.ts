import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { type BenchRun, chartRows, chartSvg, writeChart } from "../bench/chart.js";

/** A row as harness.ts writes it: only the rates matter to the chart. */
const row = (name: string, concurrency: number, perSecond: number, baselinePerSecond: number, extra: Partial<BenchRun["comparisons"][number]> = {}) => ({
  what: `${name} (${perSecond}/s this run)`,
  subject: { name, concurrency, perSecond },
  baseline: { name: "raw INSERT", concurrency, perSecond: baselinePerSecond },
  ...extra,
});

// Two runs, written out of order: the chart sorts by date.
const runs: BenchRun[] = [
  {
    date: "2026-12-05T07:21:05.893Z",
    comparisons: [row("IP acquire+release", 1, 400, 1000), row("child /24 acquire", 8, 50, 1000, { ratioTarget: 0.04 })],
  },
  {
    date: "2026-12-01T15:33:19.074Z",
    comparisons: [
      row("IP acquire+release", 1, 800, 1000),
      // A row measured against itself (latency only) has no ratio: not plotted.
      row("allocation -> Wait stream", 1, Number.NaN, Number.NaN),
    ],
  },
];

/** Every `<circle>` of the SVG with the attributes the chart gives it. */
function circles(svg: string) {
  return [...svg.matchAll(/<circle data-row="([^"]*)" data-date="([^"]*)" data-ratio="([^"]*)" cx="([^"]*)" cy="([^"]*)"/g)].map((m) => ({
    row: m[1]!,
    date: m[2]!,
    ratio: Number(m[3]),
    cx: Number(m[4]),
    cy: Number(m[5]),
  }));
}

describe("benchmark chart", () => {
  it("plots one point per row and run at the row's ratio to its baseline", () => {
    const svg = chartSvg(runs);
    const points = circles(svg);
    expect(points.map(({ row, date, ratio }) => ({ row, date, ratio }))).toEqual([
      { row: "IP acquire+release", date: "2026-12-01T15:33:19.074Z", ratio: 0.8 },
      { row: "IP acquire+release", date: "2026-12-05T07:21:05.893Z", ratio: 0.4 },
      { row: "child /24 acquire, concurrency 8", date: "2026-12-05T07:21:05.893Z", ratio: 0.05 },
    ]);
    const [older, newer, child] = points;
    // Dates on x, in order; a higher ratio sits higher (smaller y), on a log scale: 0.8 -> 0.4 -> 0.05 is one step, then three.
    expect(older!.cx).toBeLessThan(newer!.cx);
    expect(newer!.cx).toBe(child!.cx);
    expect(older!.cy).toBeLessThan(newer!.cy);
    expect(newer!.cy).toBeLessThan(child!.cy);
    expect((child!.cy - newer!.cy) / (newer!.cy - older!.cy)).toBeCloseTo(3, 1);
    // The row's line goes through its points.
    const line = /<polyline data-row="IP acquire\+release" points="([^"]*)"/.exec(svg)![1];
    expect(line).toBe(`${older!.cx.toFixed(1)},${older!.cy.toFixed(1)} ${newer!.cx.toFixed(1)},${newer!.cy.toFixed(1)}`);
  });

  it("draws a row's ratio target: DESIGN's for rows written before the field, the JSON's own otherwise", () => {
    const svg = chartSvg(runs);
    const targets = Object.fromEntries(
      [...svg.matchAll(/<line class="target" data-row="([^"]*)" data-target="([^"]*)" x1="[^"]*" x2="[^"]*" y1="([^"]*)"/g)].map((m) => [m[1]!, { target: Number(m[2]), y: Number(m[3]) }]),
    );
    expect(Object.keys(targets).sort()).toEqual(["IP acquire+release", "child /24 acquire, concurrency 8"]);
    expect(targets["IP acquire+release"]!.target).toBe(0.7);
    expect(targets["child /24 acquire, concurrency 8"]!.target).toBe(0.04);
    // 0.7 lies between the points at 0.8 and 0.4.
    const [older, newer] = circles(svg);
    expect(targets["IP acquire+release"]!.y).toBeGreaterThan(older!.cy);
    expect(targets["IP acquire+release"]!.y).toBeLessThan(newer!.cy);
    expect(svg).toContain("IP acquire+release (target ≥ 0.7)");
  });

  it("leaves out runs with nothing to plot", () => {
    const { dates, rows } = chartRows([...runs, { date: "2026-12-06T00:00:00.000Z", comparisons: [row("allocation -> Wait stream", 1, Number.NaN, Number.NaN)] }]);
    expect(dates).toEqual(["2026-12-01T15:33:19.074Z", "2026-12-05T07:21:05.893Z"]);
    expect(rows.map((r) => r.key)).toEqual(["IP acquire+release", "child /24 acquire, concurrency 8"]);
  });

  it("starts a row of its own when a subject gets a new baseline, named with each baseline", () => {
    const bare = { ...row("IP acquire+release", 1, 900, 1000), baseline: { name: "bare server", concurrency: 1, perSecond: 1000 } };
    const { rows } = chartRows([...runs, { date: "2026-12-06T00:00:00.000Z", comparisons: [bare] }]);
    expect(rows.map((r) => [r.key, r.points.map((p) => p.ratio)])).toEqual([
      ["IP acquire+release, vs raw INSERT", [0.8, 0.4]],
      ["child /24 acquire, concurrency 8", [0.05]],
      ["IP acquire+release, vs bare server", [0.9]],
    ]);
  });

  it("writes the chart from a results folder", () => {
    const dir = mkdtempSync(join(tmpdir(), "bench-chart-"));
    try {
      runs.forEach((r, i) => writeFileSync(join(dir, `bench-${i}.json`), JSON.stringify(r)));
      writeFileSync(join(dir, "notes.txt"), "not a run");
      const out = join(dir, "chart.svg");
      writeChart(pathToFileURL(`${dir}/`), pathToFileURL(out));
      expect(circles(readFileSync(out, "utf8"))).toHaveLength(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
