import { type HostPortOptions, parseHostPort } from "./host-port.js";

/**
 * Settings of a binary: each an environment variable and the matching
 * `--flag`; a flag wins over the environment, the environment over the
 * fallback. An empty flag or environment variable counts as unset. Every error names
 * the setting both ways, as the operator may have set either.
 */
export interface Setting {
  readonly env: string;
  readonly flag: string;
  readonly fallback?: string;
  /** Without a fallback the setting is required, unless it is optional (then it reads as undefined). */
  readonly optional?: boolean;
}

export type Settings = Readonly<Record<string, Setting>>;

export class SettingsError extends Error {}

/** "--listen ($METAL_LISTEN)": how errors and help name a setting. */
export const settingName = (s: Setting): string => `--${s.flag} ($${s.env})`;

/** `--name value` and `--name=value` pairs, for the flags of `known` only. */
export function parseFlags(known: ReadonlySet<string>, argv: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) throw new SettingsError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (!known.has(name)) throw new SettingsError(`unknown flag "--${name}"`);
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new SettingsError(`flag "--${name}" needs a value`);
    flags.set(name, value);
  }
  return flags;
}

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;

/** "500ms", "90s", "30m", "1h", or "0" (never); undefined when the text is none of these. */
export function parseDuration(text: string): number | undefined {
  if (text === "0") return 0;
  const m = /^(\d+)(ms|s|m|h)$/.exec(text);
  return m ? Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS] : undefined;
}

const TRUE = new Set(["1", "true", "yes", "on"]);
const FALSE = new Set(["0", "false", "no", "off"]);

export interface SettingsReader<K extends string> {
  /** The text; throws when a required setting is unset. */
  get(k: K): string;
  /** The text, or undefined when unset and without a fallback. */
  optional(k: K): string | undefined;
  /** The text through `parse`, whose thrown message is prefixed with the setting's name. */
  parse<T>(k: K, parse: (text: string) => T): T;
  /** A duration with a unit ("90s", "30m", "1h", "500ms"; "0" when `allowZero`), in milliseconds. */
  duration(k: K, opts?: { allowZero?: boolean }): number;
  /** A positive number of seconds without a unit ("60", "0.2"), in milliseconds. */
  seconds(k: K): number;
  /** A whole number in [min, max]. */
  int(k: K, min: number, max: number): number;
  /** An absolute URL, with one of `protocols` (e.g. ["http:", "https:"]) when given. */
  url(k: K, protocols?: readonly string[]): string;
  /** host:port, checked; returned as written. */
  hostPort(k: K, opts?: HostPortOptions): string;
  bool(k: K): boolean;
  /** A comma-separated list, trimmed, without empty entries. */
  list(k: K): string[];
}

export function readSettings<S extends Settings>(settings: S, env: NodeJS.ProcessEnv, argv: readonly string[]): SettingsReader<Extract<keyof S, string>> {
  type K = Extract<keyof S, string>;
  const flags = parseFlags(new Set(Object.values(settings).map((s) => s.flag)), argv);
  const optional = (k: K): string | undefined => {
    const s = settings[k]!;
    // An empty flag or variable counts as unset: `--x ""` and `X=` both mean "the default".
    return (flags.get(s.flag) || undefined) ?? (env[s.env] || undefined) ?? s.fallback;
  };
  const get = (k: K): string => {
    const v = optional(k);
    if (v === undefined) throw new SettingsError(`${settingName(settings[k]!)} is required`);
    return v;
  };
  const fail = (k: K, why: string): never => {
    throw new SettingsError(`${settingName(settings[k]!)}: ${why}`);
  };
  const parse = <T>(k: K, fn: (text: string) => T): T => {
    const text = get(k);
    try {
      return fn(text);
    } catch (err) {
      return fail(k, err instanceof Error ? err.message : String(err));
    }
  };
  return {
    get,
    optional,
    parse,
    duration(k, opts = {}) {
      const text = get(k);
      const ms = parseDuration(text);
      if (ms === undefined) return fail(k, `"${text}" is not a duration (e.g. 90s, 30m, 1h${opts.allowZero ? "; 0 for never" : ""})`);
      if (ms === 0 && !opts.allowZero) return fail(k, "must be longer than 0");
      return ms;
    },
    seconds(k) {
      const text = get(k);
      const n = Number(text);
      if (text.trim() === "" || !Number.isFinite(n) || n <= 0) return fail(k, `must be a positive number of seconds, not "${text}"`);
      return Math.round(n * 1000);
    },
    int(k, min, max) {
      const text = get(k);
      if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) return fail(k, `must be a number from ${min} to ${max}, not "${text}"`);
      return Number(text);
    },
    url(k, protocols) {
      const text = get(k);
      let u: URL;
      try {
        u = new URL(text);
      } catch {
        return fail(k, `"${text}" is not a URL`);
      }
      if (protocols && !protocols.includes(u.protocol)) return fail(k, `"${text}" must start with ${protocols.map((p) => `${p}//`).join(" or ")}`);
      return text;
    },
    hostPort(k, opts) {
      return parse(k, (text) => (parseHostPort(text, opts), text));
    },
    bool(k) {
      const text = get(k).toLowerCase();
      if (TRUE.has(text)) return true;
      if (FALSE.has(text)) return false;
      return fail(k, `"${text}" is neither true nor false`);
    },
    list: (k) =>
      (optional(k) ?? "")
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
  };
}

/** One line per setting for `--help`; `hideDefault` names env variables whose default depends on the host. */
export function describeSettings(settings: Settings, hideDefault: readonly string[] = []): string {
  const width = Math.max(...Object.values(settings).map((s) => s.flag.length)) + 2;
  return Object.values(settings)
    .map((s) => {
      const def = s.fallback !== undefined ? (hideDefault.includes(s.env) ? "" : ` (default ${s.fallback || "none"})`) : s.optional ? "" : " (required)";
      return `  --${s.flag.padEnd(width)} $${s.env}${def}`;
    })
    .join("\n");
}
