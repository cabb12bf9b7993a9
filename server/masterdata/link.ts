import { join } from "node:path";
import type { DescMethod, DescMethodServerStreaming, DescMethodUnary, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, createClient, createConnectRouter, createRouterTransport, type HandlerContext, type ServiceImpl, type Transport } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { safeError } from "../../client/log-redaction.js";
import { createTransport } from "../../client/transport.js";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../gen/grpc/health/v1/health_pb.js";
import { ProjectService } from "../../gen/masterdata/v1/project_pb.js";
import type { DbHandle } from "../db/handle.js";
import { failedPrecondition } from "../errors.js";
import { Degraded } from "../health.js";
import type { Logger } from "../logger.js";
import { pingDatabase } from "../repositories/health-repository.js";
import { createServiceCredentialSigner } from "./auth/service-credential.js";
import { openMasterdataDatabase } from "./database.js";
import { createMasterdataRoutes, type MasterdataDeps } from "./routes.js";

/** How metal-api reaches masterdata: in-process on its own database, or a masterdata-api over HTTP/2. */
export interface MasterdataLink {
  /** masterdata.v1 on metal-api's router (operators call it there): the services themselves, or forwarders. */
  readonly routes: (router: ConnectRouter) => void;
  /** What metal-api's own masterdata clients use (project lookups), as metal-api itself. */
  readonly transport: Transport;
  /** Fails when masterdata cannot answer (metal-api's health part "masterdata"). */
  check(): Promise<void>;
  close(): Promise<void>;
}

export interface MasterdataLinkSettings {
  /** A masterdata-api to call (MASTERDATA_URL); undefined runs masterdata in-process. */
  masterdataUrl: string | undefined;
  /** In-process only: masterdata's database (MASTERDATA_DATABASE_URL, or PGlite under dataDir). */
  masterdataDatabaseUrl: string | undefined;
  masterdataDatabasePoolSize: number;
  dataDir: string;
}

export interface MasterdataLinkDeps extends Pick<MasterdataDeps, "projectUsage"> {
  /** Told after a project is deleted (required: every project delete ends the tokens' grants on it). */
  projectDeleted: (projectId: string) => Promise<void>;
  /** The metal database: metal-api signs its service credential with the control plane's key. */
  metalDb: DbHandle;
  /** This replica's name, the subject of its service credential. */
  replicaId: string;
  log: Logger;
}

/** A call metal-api makes to masterdata-api that has no deadline of its own gets this one. */
const CALL_TIMEOUT_MS = 10_000;
/** A connection to masterdata-api that saw nothing for this long is verified by a PING before it carries a call. */
const PING_INTERVAL_MS = 15_000;

/** masterdata in-process (today's default) or remote (MASTERDATA_URL): same services, same answers, one interface. */
export function openMasterdataLink(settings: MasterdataLinkSettings, deps: MasterdataLinkDeps): Promise<MasterdataLink> {
  return settings.masterdataUrl ? Promise.resolve(remoteMasterdata(settings.masterdataUrl, deps)) : inProcessMasterdata(settings, deps);
}

async function inProcessMasterdata(settings: MasterdataLinkSettings, deps: MasterdataLinkDeps): Promise<MasterdataLink> {
  const masterdata = await openMasterdataDatabase({
    url: settings.masterdataDatabaseUrl,
    dataDir: settings.masterdataDatabaseUrl ? undefined : join(settings.dataDir, "masterdata-db"),
    poolSize: settings.masterdataDatabasePoolSize,
  });
  const routes = createMasterdataRoutes({ db: masterdata.db, projectUsage: deps.projectUsage, projectDeleted: deps.projectDeleted });
  return { routes, transport: createRouterTransport(routes), check: () => pingDatabase(masterdata.db), close: () => masterdata.close() };
}

/** The services masterdata registers (routes.ts is the one list), read off a router that only records them. */
function masterdataServices(): DescService[] {
  const router = createConnectRouter();
  // Handlers are only registered here, never called: the dependencies are not needed.
  createMasterdataRoutes({ db: undefined, projectUsage: async () => [] } as unknown as MasterdataDeps)(router);
  return [...new Map(router.handlers.map((h) => [h.service.typeName, h.service])).values()];
}

/**
 * masterdata-api over HTTP/2 (gRPC). Two kinds of call:
 * - operators' masterdata.v1 calls to metal-api are forwarded with the
 *   operator's own token: masterdata-api verifies it and applies the same
 *   permissions again, and metal-api adds no power of its own;
 * - metal-api's own calls (project lookups for authorization and quotas,
 *   tenant self-service, sign-in) carry its service credential
 *   (auth/service-credential.ts), never an operator's.
 * ProjectService.Delete is the exception: metal-api checks the metal database
 * for what still uses the project, has masterdata-api delete it as itself
 * (masterdata-api takes deletes only from metal-api), then ends the tokens'
 * grants on it, in the order the in-process service does. metal-api's own
 * clients call the same routes (an in-process router transport in front of
 * the remote one), so a self-service project delete takes that path too.
 */
function remoteMasterdata(baseUrl: string, deps: MasterdataLinkDeps): MasterdataLink {
  const credential = createServiceCredentialSigner(deps.metalDb, deps.replicaId);
  const sessions = new Http2SessionManager(baseUrl, { pingIntervalMs: PING_INTERVAL_MS, pingTimeoutMs: CALL_TIMEOUT_MS });
  const raw = createTransport({
    baseUrl,
    protocol: "grpc",
    sessionManager: sessions,
    interceptors: [
      // A forwarded call carries its caller's token already; every other call is metal-api's own.
      (next) => async (req) => {
        if (!req.header.has("authorization")) req.header.set("authorization", `Bearer ${await credential.current()}`);
        return next(req);
      },
    ],
  });
  const remote = withBounds(raw, deps.log);
  const projects = createClient(ProjectService, remote);

  async function deleteProject(req: { id: string }, ctx: HandlerContext) {
    // Asked of masterdata-api first: NotFound and InvalidArgument come from there, as in-process.
    await projects.get({ id: req.id }, { signal: ctx.signal });
    const usage = await deps.projectUsage(req.id);
    if (usage.length > 0) throw failedPrecondition(`project "${req.id}" still has ${usage.join(", ")}; free or delete them first`);
    const res = await projects.delete({ id: req.id }, { signal: ctx.signal });
    await deps.projectDeleted(req.id);
    return res;
  }

  const routes = (router: ConnectRouter) => {
    for (const service of masterdataServices()) {
      const impl: Record<string, unknown> = {};
      for (const method of service.methods) {
        impl[method.localName] = method === ProjectService.method.delete ? deleteProject : forwarder(remote, method);
      }
      router.service(service, impl as Partial<ServiceImpl<DescService>>);
    }
  };

  return {
    routes,
    transport: createRouterTransport(routes),
    // Degraded, not unhealthy: without masterdata-api, metal-api still serves partition traffic and most
    // operator calls, so its probes must not take it out of service (or restart it) for a dependency's outage.
    async check() {
      let status: Serving;
      try {
        status = (await createClient(Health, remote).check({ service: "" }, { timeoutMs: 2_000 })).status;
      } catch (err) {
        throw new Degraded(`masterdata-api does not answer: ${ConnectError.from(err).rawMessage}`);
      }
      if (status !== Serving.SERVING) throw new Degraded(`masterdata-api reports ${Serving[status]}`);
    },
    async close() {
      sessions.abort();
    },
  };
}

/** A handler that passes the call on to masterdata-api with the caller's Authorization header. */
function forwarder(transport: Transport, method: DescMethod) {
  const headerOf = (ctx: HandlerContext) => {
    const authorization = ctx.requestHeader.get("authorization");
    return authorization ? { authorization } : undefined;
  };
  if (method.methodKind === "unary") {
    const unary = method as DescMethodUnary;
    return async (req: never, ctx: HandlerContext) => (await transport.unary(unary, ctx.signal, ctx.timeoutMs(), headerOf(ctx), req)).message;
  }
  if (method.methodKind === "server_streaming") {
    const streaming = method as DescMethodServerStreaming;
    return async function* (req: never, ctx: HandlerContext) {
      const res = await transport.stream(
        streaming,
        ctx.signal,
        ctx.timeoutMs(),
        headerOf(ctx),
        (async function* () {
          yield req;
        })(),
      );
      yield* res.message;
    };
  }
  return () => {
    throw new ConnectError(`${method.parent.typeName}/${method.name} is not forwarded to masterdata-api`, Code.Unimplemented);
  };
}

/**
 * Every unary call gets a deadline, and a failure to reach masterdata-api is
 * answered as Unavailable without its address (logged instead); what
 * masterdata-api itself answers (NotFound, InvalidArgument, FailedPrecondition,
 * a refused operator token) passes through unchanged. Its refusing metal-api's
 * own credential is metal-api's configuration, not the caller's doing: logged,
 * and Unavailable to the caller.
 */
function withBounds(transport: Transport, log: Logger): Transport {
  const mapped = (err: unknown, method: DescMethod, own: boolean): unknown => {
    const e = ConnectError.from(err);
    const rpc = `${method.parent.typeName}/${method.name}`;
    if (e.code === Code.Unavailable || (e.code === Code.DeadlineExceeded && own)) {
      log.warn({ err: safeError(err), rpc }, "masterdata-api did not answer");
      return new ConnectError("masterdata is not reachable at the moment; try again", Code.Unavailable);
    }
    if (own && (e.code === Code.Unauthenticated || e.code === Code.PermissionDenied)) {
      log.error({ err: safeError(err), rpc }, "masterdata-api refused metal-api's service credential: does it read this control plane's metal database (METAL_DATABASE_URL)?");
      return new ConnectError("masterdata is not reachable at the moment; try again", Code.Unavailable);
    }
    // Code and message only: masterdata-api's response headers and trailers (its content-type among them) are not metal-api's answer.
    return new ConnectError(e.rawMessage, e.code);
  };
  const own = (header: Parameters<Transport["unary"]>[3]) => !new Headers(header).has("authorization");
  return {
    unary: (method, signal, timeoutMs, header, input, contextValues) =>
      transport.unary(method, signal, timeoutMs ?? CALL_TIMEOUT_MS, header, input, contextValues).catch((err: unknown) => {
        throw mapped(err, method, own(header));
      }),
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      transport.stream(method, signal, timeoutMs, header, input, contextValues).catch((err: unknown) => {
        throw mapped(err, method, own(header));
      }),
  };
}
