import { type DescEnum, type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { stringify } from "yaml";

export type OutputFormat = "table" | "wide" | "json" | "yaml";

/** One column of a table; `wide` columns appear only with `-o wide`. */
export interface Column<T> {
  header: string;
  value: (row: T) => string;
  wide?: boolean;
}

/**
 * Terminal cell width of a string. Emojis and East Asian wide characters take
 * two cells, combining marks and variation selectors none; without this the
 * status column would shift every column after it.
 */
export function displayWidth(s: string): number {
  // Nearly every cell is ASCII; measuring code points for 17,000 cells of a big list would show in the wall time.
  if (ASCII.test(s)) return s.length;
  let w = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0xfe0f || cp === 0x200d || (cp >= 0x300 && cp <= 0x36f)) continue;
    if (cp >= 0x1f000 || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xff00 && cp <= 0xff60) || cp === 0x2b55 || cp === 0x2757) w += 2;
    else w += 1;
  }
  return w;
}

const ASCII = /^[\x20-\x7e]*$/;

const pad = (s: string, width: number) => s + " ".repeat(Math.max(0, width - displayWidth(s)));

/**
 * Plain aligned columns, two spaces apart, as metalctl prints them (no borders,
 * so output pipes well into grep/awk). `minWidths` (per shown column) keeps
 * tables printed piece by piece, like `logs --watch`, aligned with each other.
 */
export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[], opts: { wide: boolean; headers: boolean; minWidths?: readonly number[] }): string {
  const cols = columns.filter((c) => opts.wide || !c.wide);
  const cells = rows.map((r) => cols.map((c) => c.value(r).replace(/\s*\n\s*/g, " ")));
  const all = opts.headers ? [cols.map((c) => c.header.toUpperCase()), ...cells] : cells;
  const widths = cols.map((_, i) => opts.minWidths?.[i] ?? 0);
  for (const line of all) for (let i = 0; i < line.length; i++) widths[i] = Math.max(widths[i]!, displayWidth(line[i]!));
  return all
    .map(
      (line) =>
        line
          .map((cell, i) => (i === line.length - 1 ? cell : pad(cell, widths[i]!)))
          .join("  ")
          .trimEnd() + "\n",
    )
    .join("");
}

/** Sorts by one or more "column[:asc|:desc]" keys, matched against headers case-insensitively. */
export function sortRows<T>(rows: T[], columns: readonly Column<T>[], sortBy: string[]): T[] {
  const keys = sortBy
    .flatMap((s) => s.split(","))
    .filter(Boolean)
    .map((spec) => {
      const [name, dir] = spec.split(":");
      const norm = (h: string) => h.toLowerCase().replace(/[\s_]+/g, "-");
      const col = columns.find((c) => norm(c.header) === norm(name!));
      if (!col)
        throw new UsageError(
          `cannot sort by "${name}": columns are ${columns
            .filter((c) => c.header)
            .map((c) => norm(c.header))
            .join(", ")}`,
        );
      return { col, desc: dir === "desc" };
    });
  if (keys.length === 0) return rows;
  return [...rows].sort((a, b) => {
    for (const { col, desc } of keys) {
      const c = col.value(a).localeCompare(col.value(b), undefined, { numeric: true });
      if (c !== 0) return desc ? -c : c;
    }
    return 0;
  });
}

/** A usage mistake found by metalctl itself (exit code 2, like a bad flag). */
export class UsageError extends Error {}

/** The canonical proto JSON of messages, as the API speaks it. */
export function jsonOf<D extends DescMessage>(schema: D, msg: MessageShape<D>): unknown {
  return toJson(schema, msg);
}

export function renderData(data: unknown, format: "json" | "yaml"): string {
  return format === "json" ? JSON.stringify(data, null, 2) + "\n" : stringify(data, { lineWidth: 0 });
}

const ACRONYMS = new Set(["PXE", "BMC", "LED", "IP", "V4", "V6", "VRF", "ASN", "BIOS", "CPU", "GPU", "NAT", "OS", "RAID", "LVM", "GPT"]);

/** Enum value name without the type prefix, in words: PROVISIONING_EVENT_TYPE_PHONED_HOME -> "Phoned Home". */
export function enumLabel(schema: DescEnum, value: number): string {
  const v = schema.values.find((x) => x.number === value);
  if (!v || value === 0) return "";
  return v.localName
    .split("_")
    .map((w) => (/^[0-9]+$/.test(w) || ACRONYMS.has(w) ? w : w[0] + w.slice(1).toLowerCase()))
    .join(" ");
}

/** Parses an enum from a user's word: "phoned-home", "PHONED_HOME" or the full proto name. */
export function enumParse(schema: DescEnum, word: string): number {
  const norm = word.toUpperCase().replace(/[-\s]/g, "_");
  const v = schema.values.find((x) => x.name === norm || x.localName === norm);
  if (!v || v.number === 0) throw new UsageError(`"${word}" is not one of ${enumChoices(schema).join(", ")}`);
  return v.number;
}

export const enumChoices = (schema: DescEnum) => schema.values.filter((v) => v.number !== 0).map((v) => v.localName.toLowerCase().replace(/_/g, "-"));

/** Human duration since a timestamp, short like kubectl: 45s, 3m, 5h, 12d. */
export function since(ts: Timestamp | undefined, now = Date.now()): string {
  if (!ts) return "";
  const s = Math.max(0, Math.floor((now - timestampDate(ts).getTime()) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export const isoTime = (ts: Timestamp | undefined) => (ts ? timestampDate(ts).toISOString() : "");

export function bytes(n: bigint | number): string {
  let v = Number(n);
  for (const unit of ["B", "KiB", "MiB", "GiB", "TiB"]) {
    if (v < 1024 || unit === "TiB") return `${Number.isInteger(v) ? v : v.toFixed(1)}${unit}`;
    v /= 1024;
  }
  return String(n);
}

export const labelsOf = (m: Record<string, string> | undefined) =>
  Object.entries(m ?? {})
    .map(([k, v]) => (v ? `${k}=${v}` : k))
    .join(",");

export const truncate = (s: string, n: number) => (displayWidth(s) > n ? s.slice(0, n - 1) + "…" : s);
