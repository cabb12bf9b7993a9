import { setMaxListeners } from "node:events";
import { join } from "node:path";
import { Code, ConnectError, type ConnectRouter, cors as connectCors, createClient } from "@connectrpc/connect";
import { ProjectMemberService as MasterdataProjectMemberService } from "../gen/masterdata/v1/project_member_pb.js";
import { ProjectService as MasterdataProjectService, type Project } from "../gen/masterdata/v1/project_pb.js";
import { TenantMemberService as MasterdataTenantMemberService } from "../gen/masterdata/v1/tenant_member_pb.js";
import { TenantService as MasterdataTenantService } from "../gen/masterdata/v1/tenant_pb.js";
import { BootService } from "../gen/metal/infra/v1/boot_pb.js";
import { createMachineCredentials } from "./auth/machine-credential.js";
import { createOidcIssuer } from "./auth/oidc/issuer.js";
import { type ProjectDirectory, singleFlight } from "./auth/project-directory.js";
import { createReplicaCredentials } from "./auth/replica-credential.js";
import { createRevocationFanout } from "./auth/revocation.js";
import { createTokenAuthority, type TokenAuthority } from "./auth/token-authority.js";
import { createBus, isMqttBus } from "./bus/create-bus.js";
import type { FanoutBus } from "./bus/fanout.js";
import type { Config } from "./config.js";
import { type ConsoleServer, startConsoleServer } from "./console/ssh-server.js";
import type { DbHandle } from "./db/handle.js";
import { openMetalDatabase } from "./db/metal-database.js";
import { type EventFeed, startEventFeed } from "./feed/publisher.js";
import type { FeedSink } from "./feed/sink.js";
import type { HealthCheck } from "./health.js";
import { createConnectHandler, type EarlyCheck } from "./http/connect-handler.js";
import { serveHomePage } from "./http/home-page.js";
import { LeanGrpcStreams } from "./http/lean-grpc-streams.js";
import type { AppHandler, NodeHandler } from "./http/node-handler.js";
import { createWebConsole, DEFAULT_WEB_DIR } from "./http/web-console.js";
import { createAuditInterceptor } from "./interceptors/audit.js";
import { createAuthInterceptor, refusalBeforeBody } from "./interceptors/auth.js";
import { createChangeNotifyInterceptor } from "./interceptors/change-notify.js";
import { createMembershipGrantsInterceptor } from "./interceptors/membership-grants.js";
import { createObserveInterceptor } from "./interceptors/observe.js";
import { createStreamLimitInterceptor, StreamLimits } from "./interceptors/stream-limits.js";
import { createStringsInterceptor } from "./interceptors/strings.js";
import { AUDIT_PRUNE_INTERVAL_MS, runAuditPruneJob } from "./jobs/audit-prune.js";
import { CHANGE_LOG_PRUNE_INTERVAL_MS, runChangeLogPruneJob } from "./jobs/change-log-prune.js";
import { runCommandExpiryJob } from "./jobs/command-expiry.js";
import { GRANT_CAP_SWEEP_INTERVAL_MS, runGrantCapSweep } from "./jobs/grant-cap-sweep.js";
import { runLivelinessJob } from "./jobs/liveliness.js";
import { runResurrectionJob } from "./jobs/resurrection.js";
import type { Logger } from "./logger.js";
import { openMasterdataLink } from "./masterdata/link.js";
import { exportBusinessMetrics } from "./metrics/business.js";
import { createMetrics, exportOpenStreams, serveMetrics } from "./metrics.js";
import { pingDatabase } from "./repositories/health-repository.js";
import { projectUsageRepository } from "./repositories/project-usage-repository.js";
import { liveReplicaIds } from "./repositories/replica-liveness-repository.js";
import { registerRoutes } from "./routes.js";
import { REPLICA_ID } from "./sessions/connections.js";
import { createConsoleOpener } from "./sessions/console/console-opener.js";
import type { RelayBroker } from "./sessions/console/relay-broker.js";
import { RemoteConsoles } from "./sessions/console/remote-console.js";
import { type Replica, startReplica } from "./sessions/replica.js";
import { createReplicaSessions } from "./sessions/replica-sessions.js";
import type { WaitTiming } from "./sessions/wait/session.js";
import { WatchHub } from "./sessions/watch/hub.js";
import { createChangeNotifier } from "./sessions/watch/notify.js";
import { recordConsoleOpen } from "./usecases/audit/console-open.js";
import { BrowserConsoles } from "./usecases/console/browser-consoles.js";
import { createSignIn } from "./usecases/signin/sign-in.js";
import { masterdataClients } from "./usecases/tenancy/masterdata.js";
import { membershipGrants } from "./usecases/tenancy/members.js";
import { readVersion } from "./version.js";

/** A built control plane: a request handler plus what tests and main need around it. */
export interface App {
  /** Serves Connect, gRPC, gRPC-Web, /metrics and CORS preflights; give it to any node:http(2) server. */
  readonly handler: AppHandler;
  readonly db: DbHandle;
  readonly authority: TokenAuthority;
  /** Open long-lived streams by class (tests and metrics). */
  readonly streamLimits: StreamLimits;
  /** Joins console sessions with metal-bmc's Relay streams (the SSH front end; tests open consoles through it). */
  readonly relayBroker: RelayBroker;
  /** This replica's row in the replica table (id, address, heartbeat). */
  readonly replica: Replica;
  /**
   * Starts the SSH console front end on host:port (default: the configured
   * METAL_CONSOLE_LISTEN; port 0 picks a free one). close() stops it.
   */
  startConsole(listen?: string, overrides?: { idleTimeoutMs?: number; pollMs?: number }): Promise<ConsoleServer>;
  /** Ends every open stream (their handlers see ctx.signal abort); first step of a shutdown. */
  endStreams(): void;
  /** Ends open streams, then closes the databases. Call after the listener stopped accepting. */
  close(): Promise<void>;
}

const LIVELINESS_INTERVAL_MS = 60_000;
const COMMAND_EXPIRY_INTERVAL_MS = 30_000;

/** 4 MiB: generous for any request of this API, small enough that garbage cannot eat memory. */
const READ_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Builds the control plane from its configuration: opens and migrates the
 * databases, loads the signing key and wires every service. No side effects at
 * import time; nothing listens until main (or a test) calls listen().
 */
/** Knobs for tests and embedding; production uses the defaults. */
export interface AppOptions {
  bus?: FanoutBus;
  waitTiming?: WaitTiming;
  /** How often an open SSH console re-checks allocation and token (default 5 s). */
  consolePollMs?: number;
  /** Overrides METAL_CONSOLE_IDLE_TIMEOUT. */
  consoleIdleTimeoutMs?: number;
  /** The Watch hub's safety-net read interval (default 1 s) and per-watcher queue bound (default 1,000 messages). */
  watchSafetyNetMs?: number;
  watchMaxQueued?: number;
  /** The other live replicas' ids (tests); default: the replicas table, when the bus is MQTT. A revoke waits for their acknowledgement. */
  liveReplicas?: () => Promise<readonly string[]>;
  /** Publishes the event feed here (tests: a client of their own broker topics), whatever METAL_EVENT_FEED says. */
  feedSink?: FeedSink;
}

export async function createApp(config: Config, log: Logger, options: AppOptions = {}): Promise<App> {
  const metal = await openMetalDatabase({
    url: config.databaseUrl,
    dataDir: config.databaseUrl ? undefined : join(config.dataDir, "metal-db"),
    poolSize: config.databasePoolSize,
  });
  const db = metal.db;
  // In-process on its own database, or a masterdata-api over HTTP when MASTERDATA_URL is set (docs/masterdata-api.md).
  const masterdata = await openMasterdataLink(config, {
    metalDb: db,
    replicaId: config.replicaId ?? REPLICA_ID,
    log,
    projectUsage: (id) => projectUsageRepository.describe(db, id),
    projectDeleted: (id) => authority.dropProjectGrants(db, id),
  }).catch(async (err: unknown) => {
    await metal.close();
    throw err;
  });
  const masterdataRoutes = masterdata.routes;
  // metal-api reaches masterdata only through its generated client; co-located, that client is in-process.
  const masterdataTransport = masterdata.transport;
  const mdProjects = createClient(MasterdataProjectService, masterdataTransport);
  // Tenant and project self-service (docs/tenancy.md) through the same clients.
  const tenancy = masterdataClients(masterdataTransport);
  // Authorization and quota checks of one request both ask for the project; concurrent asks share one call.
  const projectFlights = singleFlight<Project | undefined>();
  const projectOf = (projectId: string) =>
    projectFlights(projectId, async () => {
      try {
        return (await mdProjects.get({ id: projectId })).project;
      } catch (err) {
        if (ConnectError.from(err).code === Code.NotFound) return undefined;
        throw err;
      }
    });
  const projects: ProjectDirectory = {
    tenantOf: async (projectId) => (await projectOf(projectId))?.tenantId,
    async quotasOf(projectId) {
      const p = await projectOf(projectId);
      if (!p) return undefined;
      return { machine: p.quotas?.machine?.max, ip: p.quotas?.ip?.max, network: p.quotas?.network?.max };
    },
  };

  const replicaId = config.replicaId ?? REPLICA_ID;
  // MQTT when MQTT_URL is set (docs/replicas.md#the-bus); a broker that refuses us fails the start.
  const bus =
    options.bus ??
    (await createBus(config, log, replicaId).catch(async (err: unknown) => {
      await Promise.allSettled([metal.close(), masterdata.close()]);
      throw err;
    }));
  // A revoke returns once every live replica dropped the tokens from its cache (bounded wait; the cache bound is the fallback).
  const revocations = createRevocationFanout({
    bus,
    replicaId,
    log,
    liveReplicas: options.liveReplicas ?? (isMqttBus(bus) ? () => liveReplicaIds(db, replicaId, config.replicaTimeoutMs) : undefined),
  });
  const authority = await createTokenAuthority(db, { revocations });
  // OpenID Connect sign-in (docs/signin.md), off without METAL_OIDC_ISSUER; users and memberships come from masterdata's client.
  const signIn = createSignIn({
    issuer: config.oidc ? createOidcIssuer(config.oidc) : undefined,
    authority,
    db,
    log,
    masterdata: {
      tenants: createClient(MasterdataTenantService, masterdataTransport),
      tenantMembers: createClient(MasterdataTenantMemberService, masterdataTransport),
      projectMembers: createClient(MasterdataProjectMemberService, masterdataTransport),
    },
  });
  const metrics = createMetrics();
  const checks: HealthCheck[] = [
    { name: "database", check: () => pingDatabase(db) },
    { name: "masterdata", check: () => masterdata.check() },
  ];
  // The replica's row first: its daemon sessions' rows refer to it.
  const replica = await startReplica({
    db,
    id: replicaId,
    address: config.internalAddress,
    version: readVersion().version,
    heartbeatMs: config.replicaHeartbeatMs,
    timeoutMs: config.replicaTimeoutMs,
    log,
  });
  // Everything the daemon sessions of this replica share is built here, once, and handed down.
  const sessions = createReplicaSessions({
    db,
    streamLane: metal.streamLane,
    bus,
    replicaId: replica.id,
    onSessionRowError: (err, what) => log.error({ err }, `${what} failed`),
    waitTiming: options.waitTiming,
    onWaitingError: (err) => log.error({ err }, "renewing waiting leases failed"),
  });
  replica.track(sessions.connections);
  // Watch (docs/replicas.md#watch): one reader of the change log per replica, woken after committed changes here and elsewhere.
  const notifyChanges = createChangeNotifier(bus);
  sessions.waiting.notifyChanges = notifyChanges;
  const watch = new WatchHub(db, bus, { safetyNetMs: options.watchSafetyNetMs, maxQueued: options.watchMaxQueued, onError: (err) => log.error({ err }, "reading the change log failed") });
  await watch.start();
  // Consoles across replicas (docs/replicas.md): replicas prove themselves to each other with a credential signed by the shared key.
  const replicaCredentials = await createReplicaCredentials(db, replica.id);
  // metal-hammer's own credentials, one machine each, handed out through the boot path (docs/partition-traffic.md).
  const machineCredentials = await createMachineCredentials(db, config.machineCredentialLifetimeMs / 1000);
  const remoteConsoles = new RemoteConsoles({ credentials: replicaCredentials, scheme: config.tlsCert ? "https" : "http" });
  const consoleOpener = createConsoleOpener({ db, local: sessions.consoles, remote: remoteConsoles, replicaId: replica.id, replicaTimeoutMs: config.replicaTimeoutMs });
  const browserConsoles = new BrowserConsoles({
    db,
    projects,
    authority,
    consoles: consoleOpener,
    bus,
    log,
    replicaId: replica.id,
    peers: remoteConsoles,
    replicaTimeoutMs: config.replicaTimeoutMs,
    limits: { idleTimeoutMs: options.consoleIdleTimeoutMs ?? config.consoleIdleTimeoutMs, pollMs: options.consolePollMs },
  });
  const shutdown = new AbortController();
  // Every open call listens on the shutdown signal; thousands of streams are normal, not a leak.
  setMaxListeners(0, shutdown.signal);
  // One Wait stream per waiting machine: thousands are open at once, so plain gRPC Waits take the lean path (METAL_LEAN_WAIT).
  const lean = new LeanGrpcStreams(config.leanWait ? [BootService.method.wait] : []);
  // Long-lived streams are counted after authentication (per token; public ones per remote address).
  const streamLimits = new StreamLimits(config.streamLimits);
  exportOpenStreams(metrics, (cls) => streamLimits.open(cls));
  // Business metrics (docs/metrics.md): cluster-wide ones read from PostgreSQL when scraped, this replica's sessions, and the events counted as they happen.
  const businessEvents = exportBusinessMetrics(metrics, db, { replicaId: replica.id, daemonSessions: () => sessions.connections.list(), waitStreams: () => sessions.waiting.size });
  const interceptors = [
    createObserveInterceptor(log, metrics),
    // Before auth: a call refused to a valid token is recorded too (docs/audit.md).
    ...(config.audit ? [createAuditInterceptor({ db, log })] : []),
    createAuthInterceptor({ authority, projects, replicas: replicaCredentials, machines: machineCredentials }),
    createStreamLimitInterceptor(streamLimits),
    createStringsInterceptor(),
    createChangeNotifyInterceptor(notifyChanges),
    createMembershipGrantsInterceptor(membershipGrants({ md: tenancy, db, authority })),
  ];
  // A call without a usable token to a method that needs one is answered before its body is read;
  // the interceptors never see it, so it is counted here as they would count it.
  const earlyCheck: EarlyCheck = async (method, authorization, values) => {
    const refusal = await refusalBeforeBody(authority, method, authorization, values, replicaCredentials, machineCredentials);
    if (refusal) metrics.rpcHandled.inc({ service: method.parent.typeName, method: method.name, code: Code[refusal.code] });
    return refusal;
  };
  const build = readVersion();
  // The web console (docs/web-console.md) on this port; until it is built, "/" shows the home page.
  const webConsole = createWebConsole(config.webDir ?? DEFAULT_WEB_DIR, (req, res) => serveHomePage(req, res, build.version));
  const routes = (router: ConnectRouter) => {
    registerRoutes(lean.capture(router), { db, authority, projects, checks, bus, sessions, build, log, watch, machineCredentials, browserConsoles, businessEvents, signIn, masterdata: tenancy });
    masterdataRoutes(router);
  };
  const connectHandler = createConnectHandler({
    routes,
    interceptors,
    shutdownSignal: shutdown.signal,
    readMaxBytes: READ_MAX_BYTES,
    earlyCheck,
    requestTimeoutMs: config.connections.requestTimeoutMs,
    onError: (err, method) => log.error({ err, rpc: `${method.parent.typeName}/${method.name}` }, "writing the response failed"),
    fallback(req, res) {
      if (serveMetrics(metrics, req, res)) return;
      if (webConsole(req, res)) return;
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
    },
  });
  const leanOptions = { interceptors, shutdownSignal: shutdown.signal, readMaxBytes: READ_MAX_BYTES, earlyCheck, requestTimeoutMs: config.connections.requestTimeoutMs };
  const handler: AppHandler = withCors(lean.handler(connectHandler as NodeHandler, leanOptions), config.corsOrigins);
  // Listeners that see raw HTTP/2 streams (plain h2c) give lean calls no compatibility objects at all.
  handler.takeStream = lean.streamTaker(leanOptions);

  // Periodic jobs: every replica runs the timer, one at a time does the work (advisory lock).
  const liveliness = setInterval(() => {
    runLivelinessJob(db).catch((err: unknown) => log.error({ err }, "liveliness job failed"));
  }, LIVELINESS_INTERVAL_MS);
  liveliness.unref();
  const resurrection = setInterval(() => {
    runResurrectionJob(db, undefined, bus).catch((err: unknown) => log.error({ err }, "resurrection job failed"));
  }, LIVELINESS_INTERVAL_MS);
  resurrection.unref();
  const commandExpiry = setInterval(() => {
    runCommandExpiryJob(db, undefined, businessEvents).catch((err: unknown) => log.error({ err }, "command expiry job failed"));
  }, COMMAND_EXPIRY_INTERVAL_MS);
  commandExpiry.unref();
  const changeLogPrune = setInterval(() => {
    runChangeLogPruneJob(db).catch((err: unknown) => log.error({ err }, "change log prune job failed"));
  }, CHANGE_LOG_PRUNE_INTERVAL_MS);
  changeLogPrune.unref();
  const grantCapSweep = setInterval(() => {
    runGrantCapSweep({ md: tenancy, db, authority }, log).catch((err: unknown) => log.error({ err }, "grant cap sweep failed"));
  }, GRANT_CAP_SWEEP_INTERVAL_MS);
  grantCapSweep.unref();
  const auditPrune = setInterval(() => {
    runAuditPruneJob(db, config.auditRetentionMs).catch((err: unknown) => log.error({ err }, "audit prune job failed"));
  }, AUDIT_PRUNE_INTERVAL_MS);
  auditPrune.unref();
  // The event feed (docs/event-feed.md): every replica runs it, one at a time publishes (advisory lock per round).
  const feedSink = options.feedSink ?? (config.eventFeed && "publishFeed" in bus ? (bus as FanoutBus & FeedSink) : undefined);
  const feed: EventFeed | undefined = feedSink ? startEventFeed({ db, bus, sink: feedSink, log, singleReplica: metal.kind === "pglite" }) : undefined;
  if (config.eventFeed && !feedSink) log.warn("METAL_EVENT_FEED is set, but the bus cannot publish the event feed (no MQTT bus): the feed is off");

  const consoles: ConsoleServer[] = [];
  return {
    handler,
    db,
    authority,
    streamLimits,
    relayBroker: sessions.consoles,
    replica,
    async startConsole(listen = config.consoleListen, overrides = {}) {
      const c = await startConsoleServer(
        { db, authority, projects, consoles: consoleOpener, log, bus, recordOpen: config.audit ? (open) => recordConsoleOpen(db, log, open) : undefined },
        {
          listen,
          idleTimeoutMs: overrides.idleTimeoutMs ?? options.consoleIdleTimeoutMs ?? config.consoleIdleTimeoutMs,
          pollMs: overrides.pollMs ?? options.consolePollMs,
        },
      );
      consoles.push(c);
      return c;
    },
    endStreams: () => {
      sessions.endAll();
      shutdown.abort();
    },
    async close() {
      await Promise.allSettled(consoles.map((c) => c.close()));
      // Outgoing connections to the other replicas would keep the process alive until those closed them.
      remoteConsoles.close();
      clearInterval(liveliness);
      clearInterval(resurrection);
      clearInterval(commandExpiry);
      clearInterval(changeLogPrune);
      clearInterval(auditPrune);
      clearInterval(grantCapSweep);
      watch.stop();
      await feed?.stop();
      sessions.stop();
      shutdown.abort();
      // Before the database closes: the replica's row goes, and with it its sessions' rows.
      await replica.stop();
      revocations.close();
      if (!options.bus) await bus.close();
      await Promise.allSettled([metal.close(), masterdata.close()]);
    },
  };
}

/** Answers CORS preflights and decorates responses for the configured browser origins. */
function withCors(handler: NodeHandler, origins: readonly string[]): NodeHandler {
  if (origins.length === 0) return handler;
  const allowAll = origins.includes("*");
  return (req, res) => {
    const origin = req.headers.origin;
    if (typeof origin === "string" && (allowAll || origins.includes(origin))) {
      res.setHeader("access-control-allow-origin", origin);
      res.setHeader("vary", "origin");
      res.setHeader("access-control-expose-headers", [...connectCors.exposedHeaders, "x-request-id"].join(", "));
      if (req.method === "OPTIONS") {
        res.setHeader("access-control-allow-methods", connectCors.allowedMethods.join(", "));
        res.setHeader("access-control-allow-headers", [...connectCors.allowedHeaders, "authorization"].join(", "));
        res.setHeader("access-control-max-age", "7200");
        res.writeHead(204);
        res.end();
        return;
      }
    }
    handler(req, res);
  };
}
