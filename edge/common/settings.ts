/**
 * The daemons' settings: each an environment variable and the matching
 * `--flag`, flags winning over the environment, the environment over the
 * default. Errors are worded for the operator who started the daemon.
 */
export interface Setting {
  readonly env: string;
  readonly flag: string;
  /** Absent: the setting is required. */
  readonly fallback?: string;
}

export type Settings = Readonly<Record<string, Setting>>;

export interface SettingsReader<K extends string> {
  /** The value; an empty environment variable counts as unset. */
  get(k: K): string;
  /** A positive number of seconds, in milliseconds. */
  seconds(k: K): number;
  /** A whole number in [min, max]. */
  int(k: K, min: number, max: number): number;
  /** A comma-separated list, trimmed, without empty entries. */
  list(k: K): string[];
}

function parseFlags(known: ReadonlySet<string>, argv: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) throw new Error(`unexpected argument "${arg}"`);
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (!known.has(name)) throw new Error(`unknown flag "--${name}"`);
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new Error(`flag "--${name}" needs a value`);
    flags.set(name, value);
  }
  return flags;
}

export function readSettings<S extends Settings>(settings: S, env: NodeJS.ProcessEnv, argv: readonly string[]): SettingsReader<Extract<keyof S, string>> {
  const flags = parseFlags(new Set(Object.values(settings).map((s) => s.flag)), argv);
  const get = (k: Extract<keyof S, string>): string => {
    const s = settings[k]!;
    const v = flags.get(s.flag) ?? (env[s.env] || undefined) ?? s.fallback;
    if (v === undefined || (v === "" && s.fallback === undefined)) throw new Error(`--${s.flag} ($${s.env}) is required`);
    return v;
  };
  return {
    get,
    seconds(k) {
      const n = Number(get(k));
      if (!Number.isFinite(n) || n <= 0) throw new Error(`--${settings[k]!.flag} must be a positive number of seconds`);
      return Math.round(n * 1000);
    },
    int(k, min, max) {
      const v = get(k);
      if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new Error(`--${settings[k]!.flag} must be a number from ${min} to ${max}, not "${v}"`);
      return Number(v);
    },
    list: (k) =>
      get(k)
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
  };
}

/** One line per setting for `--help`; `hideDefault` names settings whose default depends on the host. */
export function describeSettings(settings: Settings, hideDefault: readonly string[] = []): string {
  const width = Math.max(...Object.values(settings).map((s) => s.flag.length)) + 2;
  return Object.values(settings)
    .map((s) => {
      const def = s.fallback === undefined ? " (required)" : hideDefault.includes(s.env) ? "" : ` (default ${s.fallback || "none"})`;
      return `  --${s.flag.padEnd(width)} $${s.env}${def}`;
    })
    .join("\n");
}
