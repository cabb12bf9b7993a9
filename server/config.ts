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
  /** Timeouts and caps of the API listener's connections. */
  readonly connections: ConnectionSettings;
  /** Long-lived streams allowed at once, per class of method. */
  readonly streamLimits: StreamLimitSettings;
}

/** What one connection may cost, and how long it may hold a slot without doing anything. */
export interface ConnectionSettings {
  /** A new connection must send its HTTP/2 preface or its first complete HTTP/1.1 request headers (and an HTTP/2 connection its first stream) within this. */
  readonly headersTimeoutMs: number;
  /** An HTTP/1.1 request must arrive completely (headers and body) within this. */
  readonly requestTimeoutMs: number;
  /** An HTTP/1.1 connection between requests, or an HTTP/2 connection without an open stream, is closed after this. */
  readonly idleTimeoutMs: number;
  /** Open connections in total, and from one remote address; more are closed on accept. */
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
  /** Concurrent streams one HTTP/2 connection may open (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly http2MaxStreams: number;
}

/** Limits of one class of long-lived stream: per connection, per principal (per remote address for public streams), in total. */
export interface StreamLimit {
  readonly perConnection: number;
  readonly perPrincipal: number;
  readonly total: number;
}

export interface StreamLimitSettings {
  /** Public streams (grpc.health.v1.Health/Watch): anyone may open them, so they count per remote address. */
  readonly public: StreamLimit;
  /** BootService.Wait: one per waiting machine, all of a partition under its infra token. */
  readonly wait: StreamLimit;
  /** Every other stream: switch and BMC sessions, console relays. */
  readonly session: StreamLimit;
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
  headersTimeout: { env: "METAL_HEADERS_TIMEOUT", flag: "headers-timeout", fallback: "20s" },
  requestTimeout: { env: "METAL_REQUEST_TIMEOUT", flag: "request-timeout", fallback: "60s" },
  idleTimeout: { env: "METAL_IDLE_TIMEOUT", flag: "idle-timeout", fallback: "2m" },
  maxConnections: { env: "METAL_MAX_CONNECTIONS", flag: "max-connections", fallback: "20000" },
  maxConnectionsPerAddress: { env: "METAL_MAX_CONNECTIONS_PER_ADDRESS", flag: "max-connections-per-address", fallback: "5000" },
  http2MaxStreams: { env: "METAL_HTTP2_MAX_STREAMS", flag: "http2-max-streams", fallback: "1000" },
  publicStreamLimits: { env: "METAL_PUBLIC_STREAM_LIMITS", flag: "public-stream-limits", fallback: "16/64/1000" },
  waitStreamLimits: { env: "METAL_WAIT_STREAM_LIMITS", flag: "wait-stream-limits", fallback: "1000/20000/50000" },
  sessionStreamLimits: { env: "METAL_SESSION_STREAM_LIMITS", flag: "session-stream-limits", fallback: "1000/2000/20000" },
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

function checkCount(name: string, value: string, min: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min) throw new ConfigError(`${name}: "${value}" is not a whole number >= ${min}`);
  return n;
}

/** "per-connection/per-principal/total", e.g. "16/64/1000". */
function checkStreamLimit(name: string, value: string): StreamLimit {
  const m = /^(\d+)\/(\d+)\/(\d+)$/.exec(value);
  if (!m) throw new ConfigError(`${name}: "${value}" is not per-connection/per-principal/total (e.g. 16/64/1000)`);
  const [perConnection, perPrincipal, total] = [m[1]!, m[2]!, m[3]!].map((v) => checkCount(name, v, 1)) as [number, number, number];
  return { perConnection, perPrincipal, total };
}

/** A timeout that must fire: "0" (never) is refused where a connection could then hold its slot forever. */
function checkTimeout(name: string, value: string): number {
  const ms = checkDuration(name, value);
  if (ms === 0) throw new ConfigError(`${name}: must be longer than 0`);
  return ms;
}

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;

/** "90s", "30m", "1h", "500ms", or "0" (never). */
function checkDuration(name: string, value: string): number {
  if (value === "0") return 0;
  const m = /^(\d+)(ms|s|m|h)$/.exec(value);
  if (!m) throw new ConfigError(`${name}: "${value}" is not a duration (e.g. 90s, 30m, 1h; 0 for never)`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

/** The connection settings when nothing is configured (embedding and tests that do not care). */
export const connectionDefaults = (): ConnectionSettings => loadConfig({}, []).connections;

/** Reads the configuration; flags win over environment variables, which win over defaults. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, argv: readonly string[] = []): Config {
  const flags = parseFlags(argv);
  const read = (key: keyof typeof settings): string | undefined => {
    const s = settings[key];
    const v = flags.get(s.flag) ?? env[s.env];
    if (v !== undefined && v !== "") return v;
    return "fallback" in s ? s.fallback : undefined;
  };
  const headersTimeoutMs = checkTimeout("METAL_HEADERS_TIMEOUT", read("headersTimeout")!);
  const requestTimeoutMs = checkTimeout("METAL_REQUEST_TIMEOUT", read("requestTimeout")!);
  // node:http measures both from the request's first byte; headers cannot be allowed longer than the whole request.
  if (headersTimeoutMs > requestTimeoutMs) throw new ConfigError("METAL_HEADERS_TIMEOUT must not be longer than METAL_REQUEST_TIMEOUT");
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
    connections: Object.freeze({
      headersTimeoutMs,
      requestTimeoutMs,
      idleTimeoutMs: checkTimeout("METAL_IDLE_TIMEOUT", read("idleTimeout")!),
      maxConnections: checkCount("METAL_MAX_CONNECTIONS", read("maxConnections")!, 1),
      maxConnectionsPerAddress: checkCount("METAL_MAX_CONNECTIONS_PER_ADDRESS", read("maxConnectionsPerAddress")!, 1),
      http2MaxStreams: checkCount("METAL_HTTP2_MAX_STREAMS", read("http2MaxStreams")!, 1),
    }),
    streamLimits: Object.freeze({
      public: checkStreamLimit("METAL_PUBLIC_STREAM_LIMITS", read("publicStreamLimits")!),
      wait: checkStreamLimit("METAL_WAIT_STREAM_LIMITS", read("waitStreamLimits")!),
      session: checkStreamLimit("METAL_SESSION_STREAM_LIMITS", read("sessionStreamLimits")!),
    }),
  });
}
