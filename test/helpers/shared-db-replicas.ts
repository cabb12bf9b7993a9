import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Transport } from "@connectrpc/connect";
import { createClient } from "@connectrpc/connect";
import { afterAll } from "vitest";
import { createTransport } from "../../client/transport.js";
import { createApp } from "../../server/app.js";
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
  /** Ends its streams, closes its listener and its app (its rows go with it); idempotent. */
  stop(): Promise<void>;
}

export interface SharedDbReplicas {
  replicas: SharedDbReplica[];
  /** A connection pool of the test's own on the shared metal database, for SQL the test needs. */
  db: DbHandle;
  metalDatabaseUrl: string;
}

/**
 * Several control planes in one process on ONE metal and ONE masterdata
 * database (scratch PostgreSQL), each with its own listener, named
 * `ids[i]`: what launchServer cannot do, since each launch makes its own
 * databases. The signing key lives in the database, so the admin token (and
 * any token) works on every replica. Torn down after the calling file's tests.
 */
export async function startSharedDbReplicas(ids: readonly string[], env: Record<string, string> = {}): Promise<SharedDbReplicas> {
  const metalDb = await createScratchDatabase("metal_test", { from: "metal" });
  const mdDb = await createScratchDatabase("md_test", { from: "masterdata" });
  const own = await openMetalDatabase({ url: metalDb.url, dataDir: undefined, poolSize: 4 });
  const replicas: SharedDbReplica[] = [];
  afterAll(async () => {
    await Promise.allSettled(replicas.map((r) => r.stop()));
    await own.close();
    metalDb.dropLater();
    mdDb.dropLater();
  });
  // The bootstrap admin token is issued once per database, by the first replica.
  let adminToken = "";
  for (const id of ids) {
    const r = await startOne(id, metalDb.url, mdDb.url, env, adminToken);
    adminToken = r.adminToken;
    replicas.push(r);
  }
  return { replicas, db: own.db, metalDatabaseUrl: metalDb.url };
}

async function startOne(id: string, metalUrl: string, mdUrl: string, env: Record<string, string>, issuedToken: string): Promise<SharedDbReplica> {
  const dataDir = await mkdtemp(join(tmpdir(), "metal-replica-test-"));
  const config = loadConfig({
    METAL_LISTEN: "127.0.0.1:0",
    METAL_DATA_DIR: dataDir,
    DATABASE_URL: metalUrl,
    MASTERDATA_DATABASE_URL: mdUrl,
    METAL_DB_POOL_SIZE: "6",
    MASTERDATA_DB_POOL_SIZE: "2",
    METAL_REPLICA_ID: id,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    ...env,
  });
  const app = await createApp(config, createLogger(config.logLevel, { pretty: false }));
  const adminToken = issuedToken || (await ensureAdminToken(app.db, app.authority, dataDir)).token;
  const listener: Listener = await listen(app.handler, config.listen, undefined, config.connections);
  // Port 0 was chosen at listen time: the row gets the real address, as an operator's METAL_INTERNAL_ADDRESS would say.
  await app.replica.setAddress(new URL(listener.url).host);
  const transports = new Map<string, Transport>();
  const transport = (kind: "connect" | "grpc", token?: string) => {
    const key = `${kind}:${token ?? ""}`;
    let t = transports.get(key);
    if (!t) {
      t = kind === "connect" ? createTransport({ baseUrl: listener.url, protocol: "connect", token }) : createTransport({ baseUrl: listener.url, token });
      transports.set(key, t);
    }
    return t;
  };
  let stopped: Promise<void> | undefined;
  return {
    id,
    app,
    url: listener.url,
    dataDir,
    adminToken,
    console: undefined,
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
