import { resolve } from "node:path";

/** Everything the control plane reads from its environment, validated once. */
export interface Config {
  /** host:port the API listens on. */
  readonly listen: string;
  /** Embedded databases, the admin token and other local state live here. */
  readonly dataDir: string;
  /** PostgreSQL URL of metal-api; undefined means embedded PGlite under dataDir. */
  readonly databaseUrl: string | undefined;
  /** PostgreSQL URL of masterdata; undefined means embedded PGlite under dataDir. */
  readonly masterdataDatabaseUrl: string | undefined;
  /** MQTT broker for the fan-out bus; undefined means in-process only. */
  readonly mqttUrl: string | undefined;
  /** host:port of the SSH console front end. */
  readonly consoleListen: string;
  /** An SSH console without input or output for this long is closed; 0 never closes it. */
  readonly consoleIdleTimeoutMs: number;
  /** TLS certificate and key files; both set switches the listener to TLS with ALPN. */
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  /** Origins allowed for browser clients (CORS); empty disables CORS. */
  readonly corsOrigins: readonly string[];
  /** pino level. */
  readonly logLevel: string;
  /** Connections of the metal database pool (PostgreSQL only). */
  readonly databasePoolSize: number;
}

/** Each setting is an environment variable and the matching `--flag` of the binary. */
const settings = {
  listen: { env: "METAL_LISTEN", flag: "listen", fallback: "127.0.0.1:8080" },
  dataDir: { env: "METAL_DATA_DIR", flag: "data-dir", fallback: "./.metal" },
  databaseUrl: { env: "DATABASE_URL", flag: "database-url" },
  masterdataDatabaseUrl: { env: "MASTERDATA_DATABASE_URL", flag: "masterdata-database-url" },
  mqttUrl: { env: "MQTT_URL", flag: "mqtt-url" },
  consoleListen: { env: "METAL_CONSOLE_LISTEN", flag: "console-listen", fallback: "127.0.0.1:5222" },
  consoleIdleTimeout: { env: "METAL_CONSOLE_IDLE_TIMEOUT", flag: "console-idle-timeout", fallback: "30m" },
  tlsCert: { env: "METAL_TLS_CERT", flag: "tls-cert" },
  tlsKey: { env: "METAL_TLS_KEY", flag: "tls-key" },
  corsOrigins: { env: "METAL_CORS_ORIGINS", flag: "cors-origins" },
  logLevel: { env: "LOG_LEVEL", flag: "log-level", fallback: "info" },
  databasePoolSize: { env: "METAL_DB_POOL_SIZE", flag: "db-pool-size", fallback: "20" },
} as const;

export class ConfigError extends Error {}

/** Names of every flag, for the binary's --help. */
export function describeSettings(): string {
  return Object.values(settings)
    .map((s) => `  --${s.flag.padEnd(26)} $${s.env}${"fallback" in s ? ` (default ${s.fallback})` : ""}`)
    .join("\n");
}

function parseFlags(argv: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  const known = new Set<string>(Object.values(settings).map((s) => s.flag));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) throw new ConfigError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (!known.has(name)) throw new ConfigError(`unknown flag "--${name}"`);
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new ConfigError(`flag "--${name}" needs a value`);
    flags.set(name, value);
  }
  return flags;
}

function checkHostPort(name: string, value: string): string {
  const m = /^(.*):(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) > 65535) throw new ConfigError(`${name}: "${value}" is not host:port`);
  return value;
}

function checkPoolSize(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new ConfigError(`METAL_DB_POOL_SIZE: "${value}" is not a number of connections (1..1000)`);
  return n;
}

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;

/** "90s", "30m", "1h", "500ms", or "0" (never). */
function checkDuration(name: string, value: string): number {
  if (value === "0") return 0;
  const m = /^(\d+)(ms|s|m|h)$/.exec(value);
  if (!m) throw new ConfigError(`${name}: "${value}" is not a duration (e.g. 90s, 30m, 1h; 0 for never)`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

/** Reads the configuration; flags win over environment variables, which win over defaults. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, argv: readonly string[] = []): Config {
  const flags = parseFlags(argv);
  const read = (key: keyof typeof settings): string | undefined => {
    const s = settings[key];
    const v = flags.get(s.flag) ?? env[s.env];
    if (v !== undefined && v !== "") return v;
    return "fallback" in s ? s.fallback : undefined;
  };
  const tlsCert = read("tlsCert");
  const tlsKey = read("tlsKey");
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new ConfigError("METAL_TLS_CERT and METAL_TLS_KEY must be set together");
  }
  return Object.freeze({
    listen: checkHostPort("METAL_LISTEN", read("listen")!),
    dataDir: resolve(read("dataDir")!),
    databaseUrl: read("databaseUrl"),
    masterdataDatabaseUrl: read("masterdataDatabaseUrl"),
    mqttUrl: read("mqttUrl"),
    consoleListen: checkHostPort("METAL_CONSOLE_LISTEN", read("consoleListen")!),
    consoleIdleTimeoutMs: checkDuration("METAL_CONSOLE_IDLE_TIMEOUT", read("consoleIdleTimeout")!),
    tlsCert,
    tlsKey,
    corsOrigins: (read("corsOrigins") ?? "").split(",").map((s) => s.trim()).filter(Boolean),
    logLevel: read("logLevel")!,
    databasePoolSize: checkPoolSize(read("databasePoolSize")!),
  });
}
