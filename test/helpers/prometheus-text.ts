/**
 * A reader of the Prometheus text exposition format (version 0.0.4), as
 * `/metrics` serves it: enough to find a sample by name and labels in tests.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  /** Family name -> type (counter, gauge, histogram, ...), from the # TYPE lines. */
  types: Map<string, string>;
  /** Family name -> help text, from the # HELP lines. */
  help: Map<string, string>;
}

const unescapeLabel = (v: string) => v.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));

/** Parses an exposition; throws on a line it cannot read, so a malformed output fails the test that reads it. */
export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (m?.[1] === "TYPE") types.set(m[2]!, m[3]!);
      else if (m?.[1] === "HELP") help.set(m[2]!, m[3]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? "";
    const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy;
    let at = 0;
    while (at < body.length) {
      label.lastIndex = at;
      const l = label.exec(body);
      if (!l) throw new Error(`bad labels in ${JSON.stringify(line)}`);
      labels[l[1]!] = unescapeLabel(l[2]!);
      at = label.lastIndex;
    }
    const raw = m[3]!;
    const value = raw === "+Inf" ? Number.POSITIVE_INFINITY : raw === "-Inf" ? Number.NEGATIVE_INFINITY : Number(raw);
    // prom-client writes NaN as "Nan" (a fresh event-loop-lag histogram); Prometheus reads either.
    if (Number.isNaN(value) && raw.toLowerCase() !== "nan") throw new Error(`bad value in ${JSON.stringify(line)}`);
    samples.push({ name: m[1]!, labels, value });
  }
  return { samples, types, help };
}

/** The samples of `name` whose labels include `labels`. */
export function samplesOf(e: Exposition, name: string, labels: Record<string, string> = {}): Sample[] {
  return e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The one sample of `name` with exactly these labels (given ones; others must not exist), or undefined. */
export function sampleValue(e: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = e.samples.filter((s) => s.name === name && Object.keys(s.labels).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} with ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

/** GETs `/metrics` of the server at `baseUrl` and parses it. */
export async function scrape(baseUrl: string): Promise<Exposition> {
  const res = await fetch(new URL("/metrics", baseUrl));
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseExposition(await res.text());
}
