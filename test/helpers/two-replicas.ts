import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createTransport } from "../../client/transport.js";
import { type App, type AppOptions, createApp } from "../../server/app.js";
import { ensureAdminToken } from "../../server/auth/admin-token.js";
import { loadConfig } from "../../server/config.js";
import { type Listener, listen } from "../../server/http/listener.js";
import { createLogger } from "../../server/logger.js";
import { createScratchDatabase } from "./postgres.js";

/** One replica of a control plane: its app, where it listens, clients for it. */
export interface ReplicaServer {
  readonly id: string;
  readonly app: App;
  readonly url: string;
  /** A Connect (HTTP/1.1, JSON) client of this replica, optionally with a bearer token. */
  client<S extends DescService>(service: S, token?: string): Client<S>;
}

export interface TwoReplicas {
  readonly a: ReplicaServer;
  readonly b: ReplicaServer;
  /** The operator admin token; both replicas accept it (they share the signing key in the database). */
  readonly adminToken: string;
  stop(): Promise<void>;
}

/**
 * Two replicas of one control plane ("A" and "B"): two apps on ONE pair of
 * scratch PostgreSQL databases (metal and masterdata), each with its own data
 * directory, replica id and listener, as two processes behind a load balancer
 * would run. `options(id)` gives each its AppOptions (its bus, above all).
 */
export async function startTwoReplicas(opts: { options?: (id: string) => AppOptions | Promise<AppOptions>; env?: Record<string, string> } = {}): Promise<TwoReplicas> {
  const metalDb = await createScratchDatabase("metal_test", { from: "metal" });
  const mdDb = await createScratchDatabase("md_test", { from: "masterdata" });
  const started: { app: App; listener: Listener; dataDir: string }[] = [];
  const start = async (id: string): Promise<ReplicaServer> => {
    const dataDir = await mkdtemp(join(tmpdir(), `metal-replica-${id}-`));
    const config = loadConfig({
      METAL_LISTEN: "127.0.0.1:0",
      METAL_DATA_DIR: dataDir,
      DATABASE_URL: metalDb.url,
      MASTERDATA_DATABASE_URL: mdDb.url,
      METAL_REPLICA_ID: id,
      // Two replicas of two test files side by side stay well under PostgreSQL's connection limit.
      METAL_DB_POOL_SIZE: "6",
      MASTERDATA_DB_POOL_SIZE: "3",
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
      ...opts.env,
    });
    const app = await createApp(config, createLogger(config.logLevel, { pretty: false }), (await opts.options?.(id)) ?? {});
    const listener = await listen(app.handler, config.listen, undefined, config.connections);
    started.push({ app, listener, dataDir });
    const transports = new Map<string, ReturnType<typeof createTransport>>();
    return {
      id,
      app,
      url: listener.url,
      client(service, token) {
        const key = token ?? "";
        let t = transports.get(key);
        if (!t) {
          t = createTransport({ baseUrl: listener.url, protocol: "connect", token });
          transports.set(key, t);
        }
        return createClient(service, t);
      },
    };
  };
  const stop = async () => {
    for (const s of started) s.app.endStreams();
    await Promise.allSettled(started.map((s) => s.listener.close(1000)));
    await Promise.allSettled(started.map((s) => s.app.close()));
    await Promise.allSettled(started.map((s) => rm(s.dataDir, { recursive: true, force: true })));
    metalDb.dropLater();
    mdDb.dropLater();
  };
  try {
    const a = await start("A");
    const b = await start("B");
    const { token: adminToken } = await ensureAdminToken(a.app.db, a.app.authority, started[0]!.dataDir);
    return { a, b, adminToken, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
