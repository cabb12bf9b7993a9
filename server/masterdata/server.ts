import { join } from "node:path";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ProjectService } from "../../gen/masterdata/v1/project_pb.js";
import { kPrincipal } from "../auth/context.js";
import type { HealthCheck } from "../health.js";
import { createConnectHandler, type EarlyCheck } from "../http/connect-handler.js";
import type { NodeHandler } from "../http/node-handler.js";
import { createAuthInterceptor, refusalBeforeBody } from "../interceptors/auth.js";
import { createObserveInterceptor } from "../interceptors/observe.js";
import { createStreamLimitInterceptor, StreamLimits } from "../interceptors/stream-limits.js";
import { createStringsInterceptor } from "../interceptors/strings.js";
import type { Logger } from "../logger.js";
import { createMetrics, exportOpenStreams, serveMetrics } from "../metrics.js";
import { pingDatabase } from "../repositories/health-repository.js";
import { createGrpcHealthService } from "../services/api/grpc-health-service.js";
import { createPublicKeyRing } from "./auth/public-keys.js";
import { createTokenVerifier, isMetalApi } from "./auth/token-verifier.js";
import type { MasterdataConfig } from "./config.js";
import { openMasterdataDatabase } from "./database.js";
import { openMetalReader } from "./db/metal-reader.js";
import { createMasterdataRoutes } from "./routes.js";

/** 4 MiB, as metal-api: generous for any masterdata request, small enough that garbage cannot eat memory. */
const READ_MAX_BYTES = 4 * 1024 * 1024;

/** masterdata-api built: a request handler for any node:http(2) server, and its shutdown. */
export interface MasterdataServer {
  readonly handler: NodeHandler;
  /** "postgres" or "pglite": where masterdata's own data is. */
  readonly databaseKind: "postgres" | "pglite";
  /** Ends open streams (health Watch); first step of a shutdown. */
  endStreams(): void;
  /** Closes both databases. Call after the listener stopped accepting. */
  close(): Promise<void>;
}

/**
 * A project is deleted only through metal-api: it alone can tell whether
 * machines, networks, IPs or size reservations still belong to the project
 * (checked before its call) and end the tokens' grants on it (after), both in
 * the metal database, which masterdata-api reads but never writes. An
 * operator calling masterdata-api directly is told where to go.
 */
function projectDeleteOnlyFromMetalApi(): Interceptor {
  return (next) => async (req) => {
    if (req.method === ProjectService.method.delete && !isMetalApi(req.contextValues.get(kPrincipal))) {
      throw new ConnectError(
        "projects are deleted through metal-api (masterdata.v1.ProjectService/Delete there): it checks that nothing in the metal database still uses the project and ends the tokens' grants on it",
        Code.FailedPrecondition,
      );
    }
    return next(req);
  };
}

/**
 * Builds masterdata-api: opens and migrates masterdata's own database, opens
 * the metal database read-only for token verification, and wires masterdata.v1,
 * the gRPC health protocol and /metrics behind metal-api's own interceptors
 * (logs and metrics, authentication and permissions, string checks). Nothing
 * listens until main (or a test) hands the handler to a listener.
 */
export async function createMasterdataServer(config: MasterdataConfig, log: Logger): Promise<MasterdataServer> {
  const masterdata = await openMasterdataDatabase({
    url: config.databaseUrl,
    dataDir: config.databaseUrl ? undefined : join(config.dataDir, "masterdata-db"),
    poolSize: config.databasePoolSize,
  });
  let metal: Awaited<ReturnType<typeof openMetalReader>>;
  try {
    metal = await openMetalReader(config.metalDatabaseUrl, config.metalDatabasePoolSize);
  } catch (err) {
    await masterdata.close();
    throw err;
  }
  const keys = createPublicKeyRing(metal.db);
  try {
    await keys.load();
  } catch (err) {
    await Promise.allSettled([metal.close(), masterdata.close()]);
    throw err;
  }
  const authority = createTokenVerifier(metal.db, keys);
  const metrics = createMetrics();
  const checks: HealthCheck[] = [
    { name: "database", check: () => pingDatabase(masterdata.db) },
    { name: "metal-database", check: () => metal.ping() },
  ];
  const masterdataRoutes = createMasterdataRoutes({
    db: masterdata.db,
    // Only metal-api deletes projects here (see projectDeleteOnlyFromMetalApi), and it asked the metal database just before.
    projectUsage: async () => [],
  });
  const services = new Set<string>();
  const routes = (router: ConnectRouter) => {
    masterdataRoutes(router);
    for (const h of router.handlers) services.add(h.service.typeName);
    router.service(Health, createGrpcHealthService(checks, services));
  };
  const streamLimits = new StreamLimits(config.streamLimits);
  exportOpenStreams(metrics, (cls) => streamLimits.open(cls));
  // No project ever needs its tenant looked up here: masterdata.v1 is for operators (server/auth/permissions.ts).
  const projects = { tenantOf: async () => undefined, quotasOf: async () => undefined };
  const interceptors = [
    createObserveInterceptor(log, metrics),
    createAuthInterceptor({ authority, projects }),
    projectDeleteOnlyFromMetalApi(),
    createStreamLimitInterceptor(streamLimits),
    createStringsInterceptor(),
  ];
  const earlyCheck: EarlyCheck = async (method, authorization, values) => {
    const refusal = await refusalBeforeBody(authority, method, authorization, values);
    if (refusal) metrics.rpcHandled.inc({ service: method.parent.typeName, method: method.name, code: Code[refusal.code] });
    return refusal;
  };
  const shutdown = new AbortController();
  const handler = createConnectHandler({
    routes,
    interceptors,
    shutdownSignal: shutdown.signal,
    readMaxBytes: READ_MAX_BYTES,
    earlyCheck,
    requestTimeoutMs: config.connections.requestTimeoutMs,
    onError: (err, method) => log.error({ err, rpc: `${method.parent.typeName}/${method.name}` }, "writing the response failed"),
    fallback(req, res) {
      if (serveMetrics(metrics, req, res)) return;
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
    },
  });
  return {
    handler,
    databaseKind: masterdata.kind,
    endStreams: () => shutdown.abort(),
    async close() {
      shutdown.abort();
      await Promise.allSettled([metal.close(), masterdata.close()]);
    },
  };
}
