import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Transport } from "@connectrpc/connect";
import { createClient } from "@connectrpc/connect";
import { afterAll } from "vitest";
import { createTransport } from "../../client/transport.js";
import { type AppOptions, createApp } from "../../server/app.js";
import { ensureAdminToken } from "../../server/auth/admin-token.js";
import { loadConfig } from "../../server/config.js";
import type { DbHandle } from "../../server/db/handle.js";
import { openMetalDatabase } from "../../server/db/metal-database.js";
import { type Listener, listen } from "../../server/http/listener.js";
import { createLogger } from "../../server/logger.js";
import { createScratchDatabase } from "./postgres.js";
import type { TestServer } from "./server-launch.js";

export interface SharedDbReplica extends TestServer {
  /** This replica's id (METAL_REPLICA_ID). */
  id: string;
  listener: Listener;
  /** Ends its streams, closes its listener and its app (its rows go with it); idempotent. */
  stop(): Promise<void>;
}

export interface SharedDbReplicas {
  replicas: SharedDbReplica[];
  /** The operator admin token; every replica accepts it (they share the signing key in the database). */
  adminToken: string;
  /** A connection pool of the test's own on the shared metal database, for SQL the test needs. */
  db: DbHandle;
  metalDatabaseUrl: string;
  /** Stops every replica and drops the databases; idempotent (runs after the file's tests unless `teardown: "manual"`). */
  stop(): Promise<void>;
}

export interface SharedDbReplicaOptions {
  /** Settings for every replica, on top of the test defaults. */
  env?: Record<string, string>;
  /** Each replica's AppOptions (its bus, above all). */
  options?: (id: string) => AppOptions | Promise<AppOptions>;
  /** Which replicas start their SSH console (on any free port); none by default. */
  console?: (id: string) => boolean;
  /** "afterAll" (default): torn down after the calling file's tests; "manual": the caller calls stop(). */
  teardown?: "afterAll" | "manual";
}

/**
 * Several control planes in one process on ONE metal and ONE masterdata
 * database (scratch PostgreSQL), named `ids[i]`, each with its own data
 * directory, listener and replica row holding its real address, as replicas
 * behind a load balancer run: what launchServer cannot do, since each launch
 * makes its own databases. The signing key lives in the database, so the
 * admin token (and any token) works on every replica.
 */
export async function startSharedDbReplicas(ids: readonly string[], opts: SharedDbReplicaOptions = {}): Promise<SharedDbReplicas> {
  const metalDb = await createScratchDatabase("metal_test", { from: "metal" });
  const mdDb = await createScratchDatabase("md_test", { from: "masterdata" });
  const own = await openMetalDatabase({ url: metalDb.url, dataDir: undefined, poolSize: 4 });
  const replicas: SharedDbReplica[] = [];
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      for (const r of replicas) r.app.endStreams();
      await Promise.allSettled(replicas.map((r) => r.stop()));
      await own.close();
      metalDb.dropLater();
      mdDb.dropLater();
    })());
  if ((opts.teardown ?? "afterAll") === "afterAll") afterAll(stop);
  try {
    // The bootstrap admin token is issued once per database, by the first replica.
    let adminToken = "";
    for (const id of ids) {
      const r = await startOne(id, { metal: metalDb.url, masterdata: mdDb.url }, opts, adminToken);
      adminToken = r.adminToken;
      replicas.push(r);
    }
    return { replicas, adminToken, db: own.db, metalDatabaseUrl: metalDb.url, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function startOne(id: string, urls: { metal: string; masterdata: string }, opts: SharedDbReplicaOptions, issuedToken: string): Promise<SharedDbReplica> {
  const dataDir = await mkdtemp(join(tmpdir(), `metal-replica-${id}-`));
  const config = loadConfig({
    METAL_LISTEN: "127.0.0.1:0",
    METAL_DATA_DIR: dataDir,
    DATABASE_URL: urls.metal,
    MASTERDATA_DATABASE_URL: urls.masterdata,
    // Small pools: several apps on one database beside other test files.
    METAL_DB_POOL_SIZE: "6",
    MASTERDATA_DB_POOL_SIZE: "3",
    METAL_REPLICA_ID: id,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    ...opts.env,
  });
  const app = await createApp(config, createLogger(config.logLevel, { pretty: false }), (await opts.options?.(id)) ?? {});
  const adminToken = issuedToken || (await ensureAdminToken(app.db, app.authority, dataDir)).token;
  const listener = await listen(app.handler, config.listen, undefined, config.connections);
  // Port 0 was chosen at listen time: the row gets the real address, as an operator's METAL_INTERNAL_ADDRESS would say.
  await app.replica.setAddress(new URL(listener.url).host);
  const consoleServer = opts.console?.(id) ? await app.startConsole("127.0.0.1:0") : undefined;
  const transports = new Map<string, Transport>();
  const transport = (kind: "connect" | "grpc", token?: string) => {
    const key = `${kind}:${token ?? ""}`;
    let t = transports.get(key);
    if (!t) {
      t = createTransport({ baseUrl: listener.url, protocol: kind, token });
      transports.set(key, t);
    }
    return t;
  };
  let stopped: Promise<void> | undefined;
  return {
    id,
    app,
    listener,
    url: listener.url,
    dataDir,
    adminToken,
    console: consoleServer,
    client: (service, token) => createClient(service, transport("connect", token)),
    grpcClient: (service, token) => createClient(service, transport("grpc", token)),
    stop: () =>
      (stopped ??= (async () => {
        app.endStreams();
        await listener.close(1000);
        await app.close();
        await rm(dataDir, { recursive: true, force: true });
      })()),
  };
}
