import { UsageError } from "./output.js";

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const PART = /(\d+)(ms|s|m|h|d)/y;

/**
 * The one duration grammar of metalctl (`--expires`, `--interval`, ...): one or
 * more number+unit pairs, units ms, s, m, h, d, e.g. 500ms, 2s, 1m30s, 30d.
 * A bare number is refused: "2" could mean seconds or minutes.
 */
export function parseDuration(flag: string, value: string): number {
  const text = value.trim();
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const start = PART.lastIndex;
    const m = PART.exec(text);
    if (!m || m.index !== start) {
      const hint = /^\d+$/.test(text) ? ` (a unit is required: ${text}s, ${text}ms, ${text}m)` : "";
      throw new UsageError(`--${flag}: "${value}" is not a duration like 500ms, 2s, 1m30s, 24h or 30d${hint}`);
    }
    total += Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  }
  if (text.length === 0) throw new UsageError(`--${flag}: a duration is required, e.g. 2s`);
  return total;
}

/** A duration of at least `minMs`, for waits and lifetimes. */
export function parseDurationAtLeast(flag: string, value: string, minMs: number): number {
  const ms = parseDuration(flag, value);
  if (ms < minMs) throw new UsageError(`--${flag}: "${value}" is too short; the minimum is ${formatDuration(minMs)}`);
  return ms;
}

/** Milliseconds back into the grammar above, largest unit that divides evenly. */
export function formatDuration(ms: number): string {
  for (const unit of ["d", "h", "m", "s"] as const) if (ms % UNIT_MS[unit] === 0 && ms >= UNIT_MS[unit]) return `${ms / UNIT_MS[unit]}${unit}`;
  return `${ms}ms`;
}
