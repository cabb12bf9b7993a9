import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { writeChart } from "./chart.js";

export interface Measurement {
  name: string;
  ops: number;
  concurrency: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** Runs `fn` `ops` times with `concurrency` workers and reports throughput and latency percentiles. */
export async function measure(name: string, ops: number, concurrency: number, fn: (i: number) => Promise<unknown>): Promise<Measurement> {
  const latencies = new Float64Array(ops);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < ops; i = next++) {
        const t = performance.now();
        await fn(i);
        latencies[i] = performance.now() - t;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const sorted = Array.from(latencies).sort((a, b) => a - b);
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
  return { name, ops, concurrency, seconds, perSecond: ops / seconds, p50Ms: pct(0.5), p99Ms: pct(0.99) };
}

export interface Comparison {
  what: string;
  subject: Measurement;
  baseline: Measurement;
  target?: string;
  /** The target as a ratio of the baseline's rate (DESIGN §7), drawn as the row's target line in docs/benchmarks.svg. */
  ratioTarget?: number;
  /** Figures that are not a rate or a latency (memory, counts); written to the JSON. */
  extra?: Record<string, number>;
}

/** Prints each result beside its baseline and writes all of them as JSON under test/bench/results/. */
export function report(comparisons: Comparison[]): void {
  const rows = comparisons.map((c) => ({
    what: c.what,
    "ops/s": c.subject.perSecond.toFixed(0),
    "p50 ms": c.subject.p50Ms.toFixed(2),
    "p99 ms": c.subject.p99Ms.toFixed(2),
    "baseline ops/s": c.baseline.perSecond.toFixed(0),
    ratio: (c.subject.perSecond / c.baseline.perSecond).toFixed(2),
    target: c.target ?? "",
  }));
  console.table(rows);
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "", memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
  const dir = new URL("./results/", import.meta.url);
  mkdirSync(dir, { recursive: true });
  const file = new URL(`bench-${new Date().toISOString().replace(/[:.]/g, "-")}.json`, dir);
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), machine, comparisons }, null, 2));
  console.log(`results written to test/bench/results/${file.pathname.split("/").pop()}`);
  // The history picture in docs/ follows every run; a chart that cannot be drawn never costs the run its numbers.
  try {
    writeChart();
    console.log("chart of all results written to docs/benchmarks.svg");
  } catch (err) {
    console.error(`docs/benchmarks.svg not rewritten: ${String(err)}`);
  }
}
