import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

/**
 * The benchmark history as a picture: every row's ratio to the baseline
 * measured in the same run, over the runs in test/bench/results/. The ratio,
 * not the absolute rate, because machines of this class differ 2-4x from one
 * day to the next (DESIGN §7) while a row and its baseline share the
 * machine's mood. Hand-written SVG: no chart package for one picture.
 *
 * `npx tsx test/bench/chart.ts` rewrites docs/benchmarks.svg; `report()` in
 * harness.ts does so after every bench run.
 */

/** A measurement as harness.ts writes it (the fields the chart reads). */
interface MeasurementJson {
  name: string;
  concurrency: number;
  perSecond: number;
}

/** One row of a run as harness.ts writes it. */
export interface ComparisonJson {
  what: string;
  subject: MeasurementJson;
  baseline: MeasurementJson;
  target?: string;
  /** The row's target as a ratio to its baseline, when a bench names one. */
  ratioTarget?: number;
}

/** One results file. */
export interface BenchRun {
  date: string;
  machine?: { cpus?: number; cpuModel?: string; memoryGiB?: number; node?: string };
  comparisons: ComparisonJson[];
}

export interface ChartPoint {
  /** Index of the run on the x axis (runs sorted by date). */
  run: number;
  date: string;
  ratio: number;
}

export interface ChartRow {
  key: string;
  points: ChartPoint[];
  target?: number;
}

/**
 * DESIGN §7's ratio targets for rows whose JSON does not carry `ratioTarget`
 * (every results file written before the field existed). Only throughput
 * ratios: the latency-ratio targets (Wait p99, switch fan-out p99) are not a
 * ratio of rates, which is what the chart plots.
 */
function designTarget(c: ComparisonJson): number | undefined {
  const s = c.subject.name;
  if (s === "IP acquire+release") return 0.7;
  if (s === "IP acquire" && c.subject.concurrency === 32) return 0.3;
  if (s === "machine allocation") return 0.15;
  // `metalctl machine list` <= 6x `node -e 0` in wall time is >= 1/6 in runs per second.
  if (s === "metalctl machine list") return 1 / 6;
  // >= 0.8x holds against a bare connect-node handler, not against the raw pg SELECT of the older rows.
  if (s.startsWith("PartitionService.Get") && /bare|connectNodeAdapter|connect-node/i.test(c.baseline.name)) return 0.8;
  return undefined;
}

/** A subject at its concurrency (the `what` text carries per-run figures, so it cannot name a row). */
const subjectKey = (c: ComparisonJson) => (c.subject.concurrency > 1 ? `${c.subject.name}, concurrency ${c.subject.concurrency}` : c.subject.name);

/**
 * The rows to draw: runs in date order, one row per subject and baseline,
 * points where the ratio is a finite positive number. A subject measured
 * against a new baseline starts a row of its own (named with its baseline):
 * a ratio to a raw SELECT and one to a bare server are different numbers.
 */
export function chartRows(runs: BenchRun[]): { dates: string[]; rows: ChartRow[] } {
  const sorted = [...runs].sort((a, b) => a.date.localeCompare(b.date));
  const ratio = (c: ComparisonJson) => c.subject.perSecond / c.baseline.perSecond;
  const plotted = sorted.map((run) => ({ run, rows: run.comparisons.filter((c) => Number.isFinite(ratio(c)) && ratio(c) > 0) })).filter((r) => r.rows.length > 0);
  const baselines = new Map<string, Set<string>>();
  for (const c of plotted.flatMap((r) => r.rows)) baselines.set(subjectKey(c), (baselines.get(subjectKey(c)) ?? new Set()).add(c.baseline.name));
  const rowKey = (c: ComparisonJson) => (baselines.get(subjectKey(c))!.size > 1 ? `${subjectKey(c)}, vs ${c.baseline.name}` : subjectKey(c));
  const rows = new Map<string, ChartRow>();
  plotted.forEach(({ run, rows: comparisons }, index) => {
    for (const c of comparisons) {
      const key = rowKey(c);
      const row = rows.get(key) ?? { key, points: [] };
      row.points.push({ run: index, date: run.date, ratio: ratio(c) });
      // The newest run's target wins: a target can be raised.
      row.target = c.ratioTarget ?? designTarget(c) ?? row.target;
      rows.set(key, row);
    }
  });
  return { dates: plotted.map((r) => r.run.date), rows: [...rows.values()] };
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22", "#393b79", "#ad494a"];
/** More rows than colours: the next round of colours gets a dash pattern. */
const DASHES = ["", "4 2", "1 2", "8 3 2 3"];

const xmlText = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const fixed = (n: number) => n.toFixed(1);
/** "2026-12-05T07:21:05.893Z" -> "12-05 07:21" (UTC, as the file names). */
const shortDate = (iso: string) => `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;

const WIDTH = 960;
const PLOT = { left: 70, right: WIDTH - 30, top: 50, bottom: 410 };
const LEGEND_TOP = PLOT.bottom + 90;
const LEGEND_LINE = 18;

/** The chart for `runs` as an SVG document. */
export function chartSvg(runs: BenchRun[]): string {
  const { dates, rows } = chartRows(runs);
  const values = rows.flatMap((r) => [...r.points.map((p) => p.ratio), ...(r.target === undefined ? [] : [r.target])]);
  // A log scale: ratios run from a few hundredths (a whole RPC stack over one SELECT) to about one.
  const lo = Math.floor(Math.log10(Math.min(...values, 1)));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...values, 0.1))));
  const y = (ratio: number) => PLOT.bottom - ((Math.log10(ratio) - lo) / (hi - lo)) * (PLOT.bottom - PLOT.top);
  const step = dates.length > 1 ? (PLOT.right - PLOT.left) / (dates.length - 1) : 0;
  const x = (run: number) => (dates.length > 1 ? PLOT.left + run * step : (PLOT.left + PLOT.right) / 2);
  // One legend column: the names are long, and two columns overlap.
  const height = LEGEND_TOP + rows.length * LEGEND_LINE + 20;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${PLOT.left}" y="24" font-size="15" font-weight="bold">Benchmark rows: throughput as a ratio of the baseline measured in the same run</text>`);
  out.push(`<text x="${PLOT.left}" y="40" fill="#555">log scale; dashed lines: a row's ratio target; one point per run in test/bench/results/ (UTC)</text>`);

  // Y grid at 1, 2 and 5 of each decade.
  for (let d = lo; d <= hi; d++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** d;
      if (Math.log10(v) > hi + 1e-9) continue;
      const py = fixed(y(v));
      out.push(`<line x1="${PLOT.left}" x2="${PLOT.right}" y1="${py}" y2="${py}" stroke="${m === 1 ? "#bbb" : "#e4e4e4"}"/>`);
      out.push(`<text x="${PLOT.left - 6}" y="${py}" text-anchor="end" dominant-baseline="middle">${Number(v.toPrecision(1))}</text>`);
    }
  }
  // X labels: one per run.
  dates.forEach((date, i) => {
    const px = fixed(x(i));
    out.push(`<line x1="${px}" x2="${px}" y1="${PLOT.top}" y2="${PLOT.bottom}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${px}" y="${PLOT.bottom + 12}" text-anchor="end" transform="rotate(-40 ${px} ${PLOT.bottom + 12})">${shortDate(date)}</text>`);
  });
  out.push(`<rect x="${PLOT.left}" y="${PLOT.top}" width="${PLOT.right - PLOT.left}" height="${PLOT.bottom - PLOT.top}" fill="none" stroke="#888"/>`);

  rows.forEach((row, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const dash = DASHES[Math.floor(i / PALETTE.length) % DASHES.length]!;
    const dashAttr = dash ? ` stroke-dasharray="${dash}"` : "";
    const key = xmlText(row.key);
    if (row.target !== undefined) {
      const ty = fixed(y(row.target));
      out.push(
        `<line class="target" data-row="${key}" data-target="${row.target}" x1="${PLOT.left}" x2="${PLOT.right}" y1="${ty}" y2="${ty}" stroke="${color}" stroke-width="1.5" stroke-dasharray="7 5" opacity="0.8"/>`,
      );
    }
    const coords = row.points.map((p) => `${fixed(x(p.run))},${fixed(y(p.ratio))}`);
    out.push(`<polyline data-row="${key}" points="${coords.join(" ")}" fill="none" stroke="${color}" stroke-width="1.8"${dashAttr}/>`);
    for (const p of row.points) {
      out.push(
        `<circle data-row="${key}" data-date="${p.date}" data-ratio="${p.ratio}" cx="${fixed(x(p.run))}" cy="${fixed(y(p.ratio))}" r="3.5" fill="${color}"><title>${key}, ${shortDate(p.date)}: ${p.ratio.toFixed(3)}</title></circle>`,
      );
    }
    const lx = PLOT.left;
    const ly = LEGEND_TOP + i * LEGEND_LINE;
    const target = row.target === undefined ? "" : ` (target ≥ ${Number(row.target.toFixed(2))})`;
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2.5"${dashAttr}/>`);
    out.push(`<text class="legend" x="${lx + 30}" y="${ly}" dominant-baseline="middle">${key}${xmlText(target)}</text>`);
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

const RESULTS = new URL("./results/", import.meta.url);
const CHART = new URL("../../docs/benchmarks.svg", import.meta.url);

/** Reads every results file and writes the chart; returns where it wrote it. */
export function writeChart(resultsDir: URL = RESULTS, chartFile: URL = CHART): string {
  const runs = readdirSync(resultsDir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => JSON.parse(readFileSync(new URL(f, resultsDir), "utf8")) as BenchRun);
  writeFileSync(chartFile, chartSvg(runs));
  return fileURLToPath(chartFile);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeChart();
  console.log("chart written to docs/benchmarks.svg");
}
