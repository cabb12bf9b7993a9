import { resolve } from "node:path";
import { SettingsError as ConfigError, describeSettings as describeSettingsOf, readSettings } from "../../client/settings.js";
import { type ConnectionSettings, loadConfig as loadMetalConfig, type StreamLimitSettings } from "../config.js";

/** What masterdata-api reads from its environment (docs/masterdata-api.md), validated once. */
export interface MasterdataConfig {
  /** host:port it listens on. */
  readonly listen: string;
  /** The embedded database (when there is no URL) lives here, in masterdata-db/ (the folder metal-api uses for it). */
  readonly dataDir: string;
  /** PostgreSQL URL of masterdata's own database; undefined means embedded PGlite under dataDir. */
  readonly databaseUrl: string | undefined;
  readonly databasePoolSize: number;
  /**
   * PostgreSQL URL of the metal database, read only (every session is read-only):
   * the signing keys' public halves and the token rows, to verify metal tokens.
   */
  readonly metalDatabaseUrl: string;
  readonly metalDatabasePoolSize: number;
  /** TLS certificate and key files; both set switches the listener to TLS with ALPN. */
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  readonly logLevel: string;
  /** Timeouts and caps of the listener's connections (metal-api's defaults). */
  readonly connections: ConnectionSettings;
  /** Open health Watch streams allowed (metal-api's defaults; nothing else here streams). */
  readonly streamLimits: StreamLimitSettings;
}

/** Each setting is an environment variable and the matching `--flag` of the binary. */
const settings = {
  listen: { env: "MASTERDATA_LISTEN", flag: "listen", fallback: "127.0.0.1:8081" },
  dataDir: { env: "MASTERDATA_DATA_DIR", flag: "data-dir", fallback: "./.masterdata" },
  databaseUrl: { env: "MASTERDATA_DATABASE_URL", flag: "database-url", optional: true },
  databasePoolSize: { env: "MASTERDATA_DB_POOL_SIZE", flag: "db-pool-size", fallback: "20" },
  metalDatabaseUrl: { env: "METAL_DATABASE_URL", flag: "metal-database-url", optional: true },
  metalDatabasePoolSize: { env: "METAL_DB_POOL_SIZE", flag: "metal-db-pool-size", fallback: "4" },
  tlsCert: { env: "MASTERDATA_TLS_CERT", flag: "tls-cert", optional: true },
  tlsKey: { env: "MASTERDATA_TLS_KEY", flag: "tls-key", optional: true },
  logLevel: { env: "LOG_LEVEL", flag: "log-level", fallback: "info" },
} as const;

export { ConfigError };

/** Names of every flag, for the binary's --help. */
export const describeSettings = (): string => describeSettingsOf(settings);

const POSTGRES = ["postgres:", "postgresql:"];

/** Reads the configuration; flags win over environment variables, which win over defaults. */
export function loadMasterdataConfig(env: NodeJS.ProcessEnv = process.env, argv: readonly string[] = []): MasterdataConfig {
  const r = readSettings(settings, env, argv);
  const tlsCert = r.optional("tlsCert");
  const tlsKey = r.optional("tlsKey");
  if ((tlsCert === undefined) !== (tlsKey === undefined)) throw new ConfigError("MASTERDATA_TLS_CERT and MASTERDATA_TLS_KEY must be set together");
  // Without the metal database no token can be verified, and masterdata-api answers nothing without a verified caller.
  if (r.optional("metalDatabaseUrl") === undefined) {
    throw new ConfigError(
      "--metal-database-url ($METAL_DATABASE_URL) is required: masterdata-api verifies metal tokens against the metal database's signing keys and token rows (read only); an embedded metal-api cannot be shared, run masterdata in-process then",
    );
  }
  const databaseUrl = r.optional("databaseUrl") === undefined ? undefined : r.url("databaseUrl", POSTGRES);
  return Object.freeze({
    listen: r.hostPort("listen"),
    dataDir: resolve(r.get("dataDir")),
    databaseUrl,
    databasePoolSize: r.int("databasePoolSize", 1, 1000),
    metalDatabaseUrl: r.url("metalDatabaseUrl", POSTGRES),
    metalDatabasePoolSize: r.int("metalDatabasePoolSize", 1, 100),
    tlsCert,
    tlsKey,
    logLevel: r.get("logLevel"),
    ...metalDefaults(),
  });
}

/** The listener's limits as metal-api's defaults have them. */
function metalDefaults(): Pick<MasterdataConfig, "connections" | "streamLimits"> {
  const { connections, streamLimits } = loadMetalConfig({}, []);
  return { connections, streamLimits };
}
