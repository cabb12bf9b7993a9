import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Config, StreamLimit } from "../../server/config.js";
import type { Logger } from "../../server/logger.js";
import { LabStartError } from "./ports.js";

// import.meta.url, not dirname: the lab runs from a bundle, which rewrites only the former to this source's place.
const REPO = fileURLToPath(new URL("../..", import.meta.url));

/** How long a replica may take to listen: the first start of a checkout builds metal-api's bundle first. */
const READY_TIMEOUT_MS = 180_000;

/**
 * The settings of `config` as metal-api's environment variables, so that a
 * replica process runs with what the lab was given (flags, variables or a
 * test's Config alike). Listen addresses, the replica's identity and the
 * broker are the lab's to choose per replica; TLS stays off, as in the lab.
 */
export function replicaEnvironment(config: Config): Record<string, string> {
  const ms = (n: number) => `${n}ms`;
  const limit = (l: StreamLimit) => `${l.perConnection}/${l.perPrincipal}/${l.total}`;
  const env: Record<string, string> = {
    METAL_DATA_DIR: config.dataDir,
    METAL_MQTT_TOPIC_PREFIX: config.mqttTopicPrefix,
    METAL_EVENT_FEED: String(config.eventFeed),
    METAL_REPLICA_HEARTBEAT: ms(config.replicaHeartbeatMs),
    METAL_REPLICA_TIMEOUT: ms(config.replicaTimeoutMs),
    METAL_CONSOLE_IDLE_TIMEOUT: config.consoleIdleTimeoutMs === 0 ? "0" : ms(config.consoleIdleTimeoutMs),
    METAL_CORS_ORIGINS: config.corsOrigins.join(","),
    LOG_LEVEL: config.logLevel,
    METAL_DB_POOL_SIZE: String(config.databasePoolSize),
    MASTERDATA_DB_POOL_SIZE: String(config.masterdataDatabasePoolSize),
    METAL_HEADERS_TIMEOUT: ms(config.connections.headersTimeoutMs),
    METAL_REQUEST_TIMEOUT: ms(config.connections.requestTimeoutMs),
    METAL_IDLE_TIMEOUT: ms(config.connections.idleTimeoutMs),
    METAL_MAX_CONNECTIONS: String(config.connections.maxConnections),
    METAL_MAX_CONNECTIONS_PER_ADDRESS: String(config.connections.maxConnectionsPerAddress),
    METAL_HTTP2_MAX_STREAMS: String(config.connections.http2MaxStreams),
    METAL_PUBLIC_STREAM_LIMITS: limit(config.streamLimits.public),
    METAL_WAIT_STREAM_LIMITS: limit(config.streamLimits.wait),
    METAL_SESSION_STREAM_LIMITS: limit(config.streamLimits.session),
    METAL_WATCH_STREAM_LIMITS: limit(config.streamLimits.watch),
    METAL_MACHINE_CREDENTIAL_LIFETIME: ms(config.machineCredentialLifetimeMs),
    METAL_LEAN_WAIT: String(config.leanWait),
    METAL_AUDIT: String(config.audit),
    METAL_AUDIT_RETENTION: ms(config.auditRetentionMs),
    // Set empty: a TLS pair in the lab's own environment must not reach replicas the lab's daemons dial in plain h2c.
    METAL_TLS_CERT: "",
    METAL_TLS_KEY: "",
  };
  // Every replica serves the same web console build the lab would.
  if (config.webDir) env.METAL_WEB_DIR = config.webDir;
  if (config.databaseUrl) env.DATABASE_URL = config.databaseUrl;
  if (config.masterdataDatabaseUrl) env.MASTERDATA_DATABASE_URL = config.masterdataDatabaseUrl;
  // Empty when unset, like the TLS pair: a value in the lab's own environment that its Config did not take must not reach them either.
  env.MASTERDATA_URL = config.masterdataUrl ?? "";
  Object.assign(env, signInEnvironment(config));
  return env;
}

/** METAL_OIDC_* and METAL_SIGNIN_*: every replica trusts the same issuer the same way (or none). */
function signInEnvironment(config: Config): Record<string, string> {
  const o = config.oidc;
  if (!o) return { METAL_OIDC_ISSUER: "", METAL_OIDC_CLIENT_ID: "", METAL_OIDC_CLIENT_SECRET: "", METAL_OIDC_USER_CLAIM: "", METAL_OIDC_SCOPES: "", METAL_SIGNIN_TOKEN_TTL: "", METAL_SIGNIN_USER_QUOTAS: "" };
  const quotas = (["machine", "ip", "network", "project"] as const).map((k) => `${k}=${o.userQuotas[k] ?? "unlimited"}`).join(",");
  return {
    METAL_OIDC_ISSUER: o.issuer,
    METAL_OIDC_CLIENT_ID: o.clientId,
    METAL_OIDC_CLIENT_SECRET: o.clientSecret ?? "",
    METAL_OIDC_USER_CLAIM: o.userClaim,
    METAL_OIDC_SCOPES: o.scopes.join(","),
    METAL_SIGNIN_TOKEN_TTL: `${o.tokenTtlMs}ms`,
    METAL_SIGNIN_USER_QUOTAS: quotas,
  };
}

/** Linux's range of ports for outgoing connections (its default when it cannot be read). */
function ephemeralRange(): { low: number; high: number } {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && low > 1024 && high >= low) return { low, high };
  } catch {
    // Not Linux: the usual default.
  }
  return { low: 32768, high: 60999 };
}

function bindable(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const probe = createServer();
    probe.once("error", () => done(false));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => done(true)));
  });
}

/**
 * A port on `host` that is free now and stays out of the way of outgoing
 * connections: taken below the system's ephemeral range, since a port the
 * system handed out once (port 0) can be the local port of some outgoing
 * connection (a database pool's) by the time the replica binds it, or when it
 * binds it again after a restart. `taken` collects the ports chosen so far,
 * so that one lab never picks a port twice.
 */
export async function freePort(host: string, taken: Set<number> = new Set()): Promise<number> {
  const { low } = ephemeralRange();
  const from = Math.max(1025, low - 12_000);
  for (let i = 0; i < 100; i++) {
    const port = from + Math.floor(Math.random() * (low - from));
    if (taken.has(port) || !(await bindable(host, port))) continue;
    taken.add(port);
    return port;
  }
  throw new LabStartError(`no free port below ${low} on ${host} for a replica`);
}

/** pino's numeric levels, for replaying a replica's JSON lines into the lab's log. */
const LEVELS: Record<number, "trace" | "debug" | "info" | "warn" | "error" | "fatal"> = { 10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal" };

export interface ReplicaProcessOptions {
  /** METAL_REPLICA_ID, e.g. lab-api-1. */
  id: string;
  /** host:port of its API listener, which is also its internal address. */
  address: string;
  /** host:port of its SSH console. */
  consoleAddress: string;
  /** The environment of every replica (settings, broker); the per-replica settings are added here. */
  env: NodeJS.ProcessEnv;
  log: Logger;
}

/**
 * One metal-api replica as its own process (`bin/metal-api.js`), on fixed
 * ports so that a restart comes back where the proxy and the other replicas
 * look for it. Its JSON log lines are replayed into the lab's log with the
 * replica's id.
 */
export class ReplicaProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  /** The last lines it wrote to stderr (what it said when it failed to start). */
  private stderrTail: string[] = [];
  /** Set when the lab itself stops or kills it: any other exit is news for the person watching. */
  private exitAsked = false;

  constructor(readonly opts: ReplicaProcessOptions) {}

  get id(): string {
    return this.opts.id;
  }

  get address(): string {
    return this.opts.address;
  }

  get consoleAddress(): string {
    return this.opts.consoleAddress;
  }

  get url(): string {
    return `http://${this.opts.address}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the process and resolves once its API and SSH console accept connections. */
  async start(): Promise<void> {
    if (this.child) return;
    const env = {
      ...this.opts.env,
      METAL_LISTEN: this.opts.address,
      METAL_CONSOLE_LISTEN: this.opts.consoleAddress,
      METAL_REPLICA_ID: this.opts.id,
      METAL_INTERNAL_ADDRESS: this.opts.address,
    };
    // Its own process group: a Ctrl-C at the terminal reaches the lab, which stops its replicas in order (and says so).
    const child = spawn(process.execPath, [join(REPO, "bin/metal-api.js")], { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    this.child = child;
    this.stderrTail = [];
    this.exitAsked = false;
    const log = this.opts.log.child({ replica: this.opts.id });
    createInterface({ input: child.stdout! }).on("line", (line) => replay(log, line));
    createInterface({ input: child.stderr! }).on("line", (line) => {
      this.stderrTail = [...this.stderrTail.slice(-19), line];
      log.warn({ stderr: line }, "replica stderr");
    });
    let gone = false;
    this.exited = new Promise<void>((done) =>
      child.once("exit", (code, signal) => {
        gone = true;
        if (this.child === child) this.child = undefined;
        if (this.exitAsked) log.debug({ code, signal }, "replica process exited");
        else log.warn({ code, signal }, "replica process exited on its own; the other replicas carry on");
        done();
      }),
    );
    const deadline = Date.now() + READY_TIMEOUT_MS;
    // The console listens after the API: both answer once it does.
    while (!(await accepts(this.opts.consoleAddress))) {
      if (gone) throw new LabStartError(`replica ${this.opts.id} exited while starting: ${this.stderrTail.join(" | ") || "no output (LOG_LEVEL=debug says more)"}`);
      if (Date.now() > deadline) {
        await this.kill("SIGKILL");
        throw new LabStartError(`replica ${this.opts.id} did not listen on ${this.opts.consoleAddress} within ${READY_TIMEOUT_MS / 1000} s`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends `signal` (SIGKILL: kill -9, no goodbye) and resolves when the process is gone. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    this.exitAsked = true;
    this.child?.kill(signal);
    await this.exited;
  }

  /** SIGTERM (metal-api drains and closes), SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.exitAsked = true;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** For process exit: no waiting possible, so no grace. */
  killNow(): void {
    this.exitAsked = true;
    this.child?.kill("SIGKILL");
  }
}

function replay(log: Logger, line: string): void {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return void log.info({ line }, "replica output");
  }
  const { level, msg, time: _time, pid: _pid, hostname: _hostname, ...fields } = entry;
  const name = LEVELS[typeof level === "number" ? level : 30] ?? "info";
  log[name](fields, typeof msg === "string" ? msg : "");
}

function accepts(address: string): Promise<boolean> {
  const sep = address.lastIndexOf(":");
  return new Promise((done) => {
    const socket = connect({ host: address.slice(0, sep).replace(/^\[(.*)\]$/, "$1"), port: Number(address.slice(sep + 1)) });
    socket.once("connect", () => {
      socket.destroy();
      done(true);
    });
    socket.once("error", () => done(false));
  });
}
