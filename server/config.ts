import { hostname } from "node:os";
import { resolve } from "node:path";
import { SettingsError as ConfigError, describeSettings as describeSettingsOf, readSettings } from "../client/settings.js";

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
  /** A masterdata-api to call over HTTP/2 (docs/masterdata-api.md); undefined runs masterdata in-process on its own database. */
  readonly masterdataUrl: string | undefined;
  /** MQTT broker for the fan-out bus; undefined means in-process only. */
  readonly mqttUrl: string | undefined;
  /** First level of every MQTT topic this control plane uses, so that several control planes can share a broker. */
  readonly mqttTopicPrefix: string;
  /** Publish the event feed (machine lifecycle, allocations, switch sync) on the broker; needs MQTT_URL. */
  readonly eventFeed: boolean;
  /** Where the other replicas reach this one (host:port of the API listener); defaults to the listen address. */
  readonly internalAddress: string;
  /** This replica's name in the replica table and in ConnectionService.List; defaults to host-pid-random. */
  readonly replicaId: string | undefined;
  /** How often this replica stamps its heartbeat (and its daemon sessions' last-seen) in the database. */
  readonly replicaHeartbeatMs: number;
  /** A replica whose heartbeat is older than this is dead: the others reap its row and its daemon sessions' rows. */
  readonly replicaTimeoutMs: number;
  /** How long a machine credential (metal-hammer's, handed out through the boot path) lives; the hammer renews it at a third. */
  readonly machineCredentialLifetimeMs: number;
  /** host:port of the SSH console front end. */
  readonly consoleListen: string;
  /** An SSH console without input or output for this long is closed; 0 never closes it. */
  readonly consoleIdleTimeoutMs: number;
  /** TLS certificate and key files; both set switches the listener to TLS with ALPN. */
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  /** Origins allowed for browser clients (CORS); empty disables CORS. */
  readonly corsOrigins: readonly string[];
  /** Folder of the built web console (index.html, assets/); undefined means the package's dist/web. */
  readonly webDir: string | undefined;
  /** pino level. */
  readonly logLevel: string;
  /** Connections of the metal database pool (PostgreSQL only). */
  readonly databasePoolSize: number;
  /** Connections of the masterdata database pool (PostgreSQL only). */
  readonly masterdataDatabasePoolSize: number;
  /** Timeouts and caps of the API listener's connections. */
  readonly connections: ConnectionSettings;
  /** Long-lived streams allowed at once, per class of method. */
  readonly streamLimits: StreamLimitSettings;
  /** Plain gRPC BootService.Wait calls take the lean path (server/http/lean-grpc-streams.ts) instead of Connect's handler. */
  readonly leanWait: boolean;
  /** Record mutating calls and console opens in the audit trail (docs/audit.md); off only for measurements. */
  readonly audit: boolean;
  /** Audit entries older than this are pruned. */
  readonly auditRetentionMs: number;
  /** OpenID Connect sign-in (docs/signin.md); undefined when METAL_OIDC_ISSUER is not set: no sign-in, nothing changes. */
  readonly oidc: OidcSettings | undefined;
}

/** Limits by kind; a kind left out is unlimited. */
export type UserQuotas = Partial<Record<"machine" | "ip" | "network" | "project", number>>;

/** The identity provider the control plane trusts for sign-in. */
export interface OidcSettings {
  /** The issuer URL exactly as its ID tokens name it (https; http only for a loopback host). */
  readonly issuer: string;
  /** The client id registered at the issuer; ID tokens must name it as their audience. */
  readonly clientId: string;
  /** Set for a confidential client: the server's code exchange (web console, metalctl --browser) authenticates with it. */
  readonly clientSecret: string | undefined;
  /** The ID token claim that names the user (and so their tenant id). */
  readonly userClaim: string;
  /** Scopes clients ask for ("openid" always among them). */
  readonly scopes: readonly string[];
  /** Lifetime of a metal token issued at sign-in. */
  readonly tokenTtlMs: number;
  /**
   * The quotas of a tenant the first sign-in creates (absent: unlimited).
   * Anyone the issuer knows can sign in, so by default a new user may make a
   * few projects but allocate nothing of their own until an operator raises
   * them; what they are invited to is governed by the inviting tenant's quotas.
   */
  readonly userQuotas: Readonly<UserQuotas>;
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
  /** MachineService.Watch (tenants and operators): per token, so a tenant's watches cannot crowd out the daemons' sessions. */
  readonly watch: StreamLimit;
}

/** Each setting is an environment variable and the matching `--flag` of the binary. */
const settings = {
  listen: { env: "METAL_LISTEN", flag: "listen", fallback: "127.0.0.1:8080" },
  dataDir: { env: "METAL_DATA_DIR", flag: "data-dir", fallback: "./.metal" },
  databaseUrl: { env: "DATABASE_URL", flag: "database-url", optional: true },
  masterdataDatabaseUrl: { env: "MASTERDATA_DATABASE_URL", flag: "masterdata-database-url", optional: true },
  masterdataUrl: { env: "MASTERDATA_URL", flag: "masterdata-url", optional: true },
  mqttUrl: { env: "MQTT_URL", flag: "mqtt-url", optional: true },
  mqttTopicPrefix: { env: "METAL_MQTT_TOPIC_PREFIX", flag: "mqtt-topic-prefix", fallback: "metal" },
  eventFeed: { env: "METAL_EVENT_FEED", flag: "event-feed", fallback: "false" },
  internalAddress: { env: "METAL_INTERNAL_ADDRESS", flag: "internal-address", optional: true },
  replicaId: { env: "METAL_REPLICA_ID", flag: "replica-id", optional: true },
  replicaHeartbeat: { env: "METAL_REPLICA_HEARTBEAT", flag: "replica-heartbeat", fallback: "5s" },
  replicaTimeout: { env: "METAL_REPLICA_TIMEOUT", flag: "replica-timeout", fallback: "30s" },
  machineCredentialLifetime: { env: "METAL_MACHINE_CREDENTIAL_LIFETIME", flag: "machine-credential-lifetime", fallback: "1h" },
  consoleListen: { env: "METAL_CONSOLE_LISTEN", flag: "console-listen", fallback: "127.0.0.1:5222" },
  consoleIdleTimeout: { env: "METAL_CONSOLE_IDLE_TIMEOUT", flag: "console-idle-timeout", fallback: "30m" },
  tlsCert: { env: "METAL_TLS_CERT", flag: "tls-cert", optional: true },
  tlsKey: { env: "METAL_TLS_KEY", flag: "tls-key", optional: true },
  corsOrigins: { env: "METAL_CORS_ORIGINS", flag: "cors-origins", optional: true },
  webDir: { env: "METAL_WEB_DIR", flag: "web-dir", optional: true },
  logLevel: { env: "LOG_LEVEL", flag: "log-level", fallback: "info" },
  databasePoolSize: { env: "METAL_DB_POOL_SIZE", flag: "db-pool-size", fallback: "20" },
  masterdataDatabasePoolSize: { env: "MASTERDATA_DB_POOL_SIZE", flag: "masterdata-db-pool-size", fallback: "20" },
  headersTimeout: { env: "METAL_HEADERS_TIMEOUT", flag: "headers-timeout", fallback: "20s" },
  requestTimeout: { env: "METAL_REQUEST_TIMEOUT", flag: "request-timeout", fallback: "60s" },
  idleTimeout: { env: "METAL_IDLE_TIMEOUT", flag: "idle-timeout", fallback: "2m" },
  maxConnections: { env: "METAL_MAX_CONNECTIONS", flag: "max-connections", fallback: "20000" },
  maxConnectionsPerAddress: { env: "METAL_MAX_CONNECTIONS_PER_ADDRESS", flag: "max-connections-per-address", fallback: "5000" },
  http2MaxStreams: { env: "METAL_HTTP2_MAX_STREAMS", flag: "http2-max-streams", fallback: "1000" },
  publicStreamLimits: { env: "METAL_PUBLIC_STREAM_LIMITS", flag: "public-stream-limits", fallback: "16/64/1000" },
  waitStreamLimits: { env: "METAL_WAIT_STREAM_LIMITS", flag: "wait-stream-limits", fallback: "1000/20000/50000" },
  sessionStreamLimits: { env: "METAL_SESSION_STREAM_LIMITS", flag: "session-stream-limits", fallback: "1000/2000/20000" },
  watchStreamLimits: { env: "METAL_WATCH_STREAM_LIMITS", flag: "watch-stream-limits", fallback: "100/100/5000" },
  leanWait: { env: "METAL_LEAN_WAIT", flag: "lean-wait", fallback: "true" },
  audit: { env: "METAL_AUDIT", flag: "audit", fallback: "true" },
  auditRetention: { env: "METAL_AUDIT_RETENTION", flag: "audit-retention", fallback: "2160h" },
  oidcIssuer: { env: "METAL_OIDC_ISSUER", flag: "oidc-issuer", optional: true },
  oidcClientId: { env: "METAL_OIDC_CLIENT_ID", flag: "oidc-client-id", optional: true },
  oidcClientSecret: { env: "METAL_OIDC_CLIENT_SECRET", flag: "oidc-client-secret", optional: true },
  oidcUserClaim: { env: "METAL_OIDC_USER_CLAIM", flag: "oidc-user-claim", fallback: "email" },
  oidcScopes: { env: "METAL_OIDC_SCOPES", flag: "oidc-scopes", fallback: "openid,email,profile" },
  signinTokenTtl: { env: "METAL_SIGNIN_TOKEN_TTL", flag: "signin-token-ttl", fallback: "8h" },
  signinUserQuotas: { env: "METAL_SIGNIN_USER_QUOTAS", flag: "signin-user-quotas", fallback: "project=3,machine=0,ip=0,network=0" },
} as const;

/** What a bad setting throws: the client kit's settings error, under the name the server's callers know. */
export { SettingsError as ConfigError } from "../client/settings.js";

/** Names of every flag, for the binary's --help. */
export const describeSettings = (): string => describeSettingsOf(settings);

/** "per-connection/per-principal/total", e.g. "16/64/1000". */
function streamLimit(text: string): StreamLimit {
  const m = /^(\d+)\/(\d+)\/(\d+)$/.exec(text);
  const [perConnection, perPrincipal, total] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
  if (!m || ![perConnection, perPrincipal, total].every((n) => Number.isSafeInteger(n) && n >= 1)) {
    throw new Error(`"${text}" is not per-connection/per-principal/total, each at least 1 (e.g. 16/64/1000)`);
  }
  return { perConnection, perPrincipal, total };
}

/** The connection settings when nothing is configured (embedding and tests that do not care). */
export const connectionDefaults = (): ConnectionSettings => loadConfig({}, []).connections;

/** Reads the configuration; flags win over environment variables, which win over defaults. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, argv: readonly string[] = []): Config {
  const r = readSettings(settings, env, argv);
  const headersTimeoutMs = r.duration("headersTimeout");
  const requestTimeoutMs = r.duration("requestTimeout");
  // node:http measures both from the request's first byte; headers cannot be allowed longer than the whole request.
  if (headersTimeoutMs > requestTimeoutMs) throw new ConfigError("METAL_HEADERS_TIMEOUT must not be longer than METAL_REQUEST_TIMEOUT");
  const tlsCert = r.optional("tlsCert");
  const tlsKey = r.optional("tlsKey");
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new ConfigError("METAL_TLS_CERT and METAL_TLS_KEY must be set together");
  }
  const listen = r.hostPort("listen");
  const mqttUrl = r.optional("mqttUrl") === undefined ? undefined : r.url("mqttUrl", ["mqtt:", "mqtts:", "tcp:", "ssl:", "ws:", "wss:"]);
  const mqttTopicPrefix = r.parse("mqttTopicPrefix", topicPrefix);
  const eventFeed = r.bool("eventFeed");
  if (eventFeed && mqttUrl === undefined) throw new ConfigError("METAL_EVENT_FEED needs MQTT_URL: the feed is published on the broker");
  const replicaHeartbeatMs = r.duration("replicaHeartbeat");
  const replicaTimeoutMs = r.duration("replicaTimeout");
  // Two missed heartbeats must not make a live replica look dead.
  if (replicaTimeoutMs < 2 * replicaHeartbeatMs) throw new ConfigError("METAL_REPLICA_TIMEOUT must be at least twice METAL_REPLICA_HEARTBEAT");
  const count = (k: "maxConnections" | "maxConnectionsPerAddress" | "http2MaxStreams") => r.int(k, 1, Number.MAX_SAFE_INTEGER);
  return Object.freeze({
    listen,
    dataDir: resolve(r.get("dataDir")),
    databaseUrl: r.optional("databaseUrl"),
    masterdataDatabaseUrl: r.optional("masterdataDatabaseUrl"),
    masterdataUrl: masterdataUrlOf(r),
    mqttUrl,
    mqttTopicPrefix,
    eventFeed,
    internalAddress: r.optional("internalAddress") === undefined ? dialable(listen) : r.hostPort("internalAddress"),
    replicaId: r.optional("replicaId") === undefined ? undefined : r.parse("replicaId", replicaName),
    replicaHeartbeatMs,
    replicaTimeoutMs,
    machineCredentialLifetimeMs: machineCredentialLifetime(r.duration("machineCredentialLifetime")),
    consoleListen: r.hostPort("consoleListen"),
    consoleIdleTimeoutMs: r.duration("consoleIdleTimeout", { allowZero: true }),
    tlsCert,
    tlsKey,
    corsOrigins: r.list("corsOrigins"),
    webDir: r.optional("webDir") === undefined ? undefined : resolve(r.get("webDir")),
    logLevel: r.get("logLevel"),
    databasePoolSize: r.parse("databasePoolSize", poolSize),
    masterdataDatabasePoolSize: r.parse("masterdataDatabasePoolSize", poolSize),
    connections: Object.freeze({
      headersTimeoutMs,
      requestTimeoutMs,
      idleTimeoutMs: r.duration("idleTimeout"),
      maxConnections: count("maxConnections"),
      maxConnectionsPerAddress: count("maxConnectionsPerAddress"),
      http2MaxStreams: count("http2MaxStreams"),
    }),
    streamLimits: Object.freeze({
      public: r.parse("publicStreamLimits", streamLimit),
      wait: r.parse("waitStreamLimits", streamLimit),
      session: r.parse("sessionStreamLimits", streamLimit),
      watch: r.parse("watchStreamLimits", streamLimit),
    }),
    leanWait: r.bool("leanWait"),
    audit: r.bool("audit"),
    auditRetentionMs: r.duration("auditRetention"),
    oidc: oidcSettings(r),
  });
}

/** Sign-in tokens live between 5 minutes and a day: long enough for a working day, short enough that leaving a team ends soon. */
const SIGNIN_TTL_MIN_MS = 5 * 60_000;
const SIGNIN_TTL_MAX_MS = 24 * 3_600_000;

/** METAL_OIDC_*: all or nothing; without an issuer the other settings must not be set (a half-configured sign-in is a mistake). */
function oidcSettings(r: ReturnType<typeof readSettings<typeof settings>>): OidcSettings | undefined {
  const issuerText = r.optional("oidcIssuer");
  if (issuerText === undefined) {
    if (r.optional("oidcClientId") !== undefined || r.optional("oidcClientSecret") !== undefined) throw new ConfigError("METAL_OIDC_CLIENT_ID and METAL_OIDC_CLIENT_SECRET need METAL_OIDC_ISSUER");
    return undefined;
  }
  const issuer = r.parse("oidcIssuer", oidcIssuer);
  const clientId = r.optional("oidcClientId");
  if (clientId === undefined) throw new ConfigError("METAL_OIDC_ISSUER needs METAL_OIDC_CLIENT_ID");
  if (!/^[\x21-\x7e]{1,256}$/.test(clientId)) throw new ConfigError("METAL_OIDC_CLIENT_ID must be 1 to 256 printable characters without spaces");
  const userClaim = r.parse("oidcUserClaim", (t) => {
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(t)) throw new Error(`"${t}" is not a claim name (letters, digits, "_", ".", ":", "-"; at most 64)`);
    return t;
  });
  const scopes = r.parse("oidcScopes", (t) => {
    const list = t.split(/[\s,]+/).filter((s) => s !== "");
    if (list.length > 16 || list.some((s) => !/^[\x21\x23-\x5b\x5d-\x7e]{1,64}$/.test(s))) throw new Error(`"${t}" is not a list of at most 16 scopes`);
    return list.includes("openid") ? list : ["openid", ...list];
  });
  const tokenTtlMs = r.duration("signinTokenTtl");
  if (tokenTtlMs < SIGNIN_TTL_MIN_MS || tokenTtlMs > SIGNIN_TTL_MAX_MS) throw new ConfigError("METAL_SIGNIN_TOKEN_TTL must be between 5m and 24h");
  const userQuotas = r.parse("signinUserQuotas", userQuotasOf);
  return Object.freeze({ issuer, clientId, clientSecret: r.optional("oidcClientSecret"), userClaim, scopes: Object.freeze(scopes), tokenTtlMs, userQuotas });
}

/** "project=3,machine=0": kinds machine, ip, network, project; a count, or "unlimited" (the same as leaving the kind out). */
function userQuotasOf(text: string): Readonly<UserQuotas> {
  const quotas: UserQuotas = {};
  for (const part of text
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "")) {
    const m = /^(machine|ip|network|project)=(\d{1,9}|unlimited)$/.exec(part);
    if (!m) throw new Error(`"${part}" is not <machine|ip|network|project>=<count or unlimited>`);
    const kind = m[1] as keyof UserQuotas;
    if (kind in quotas) throw new Error(`"${kind}" is given twice`);
    if (m[2] !== "unlimited") quotas[kind] = Number(m[2]);
  }
  return Object.freeze(quotas);
}

/** An issuer URL: https (http only on a loopback host, for tests and labs), no query or fragment, at most 256 characters (it is stored on each user). */
function oidcIssuer(text: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new Error(`"${text}" is not a URL`);
  }
  const loopback = u.hostname === "127.0.0.1" || u.hostname === "localhost" || u.hostname === "[::1]";
  if (u.protocol !== "https:" && !(u.protocol === "http:" && loopback)) throw new Error(`"${text}" must be an https URL (http only on a loopback host)`);
  if (u.search !== "" || u.hash !== "" || u.username !== "" || u.password !== "") throw new Error(`"${text}" must not carry a query, fragment or credentials`);
  if (text.length > 256) throw new Error("the issuer URL must be at most 256 characters");
  return text;
}

/** MASTERDATA_URL, when set: then masterdata's database is masterdata-api's, not metal-api's to open. */
function masterdataUrlOf(r: ReturnType<typeof readSettings<typeof settings>>): string | undefined {
  if (r.optional("masterdataUrl") === undefined) return undefined;
  if (r.optional("masterdataDatabaseUrl") !== undefined) throw new ConfigError("set MASTERDATA_URL or MASTERDATA_DATABASE_URL, not both: with MASTERDATA_URL, masterdata-api opens masterdata's database");
  return r.url("masterdataUrl", ["http:", "https:"]);
}

function poolSize(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 1000) throw new Error(`"${text}" is not a number of connections (1..1000)`);
  return Number(text);
}

/** One MQTT topic level: no wildcards, no separators, nothing a broker treats specially. */
function topicPrefix(text: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(text)) throw new Error(`"${text}" is not a topic level (letters, digits, ".", "_", "-"; at most 64)`);
  return text;
}

/** A replica name shows up in tables and logs: keep it printable and short. */
function replicaName(text: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(text)) throw new Error(`"${text}" is not a replica name (letters, digits, ".", "_", "-"; at most 128)`);
  return text;
}

/** The listen address as another replica can dial it: a wildcard host (all interfaces) becomes this host's name. */
function dialable(listen: string): string {
  const at = listen.lastIndexOf(":");
  const host = listen.slice(0, at);
  return host === "0.0.0.0" || host === "[::]" || host === "::" || host === "" ? `${hostname()}${listen.slice(at)}` : listen;
}

/** A machine credential must outlive a reboot into the discovery image and not much more: between a minute and a day. */
function machineCredentialLifetime(ms: number): number {
  if (ms < 60_000 || ms > 86_400_000) throw new ConfigError("METAL_MACHINE_CREDENTIAL_LIFETIME must be between 1m and 24h");
  return ms;
}
