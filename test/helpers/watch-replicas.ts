import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Transport } from "@connectrpc/connect";
import { afterAll } from "vitest";
import { createTransport } from "../../client/transport.js";
import { type AppOptions, createApp } from "../../server/app.js";
import { loadConfig } from "../../server/config.js";
import { type Listener, listen } from "../../server/http/listener.js";
import { createLogger } from "../../server/logger.js";
import { launchServer, type TestServer } from "./server-launch.js";

/**
 * Two control planes on ONE pair of scratch databases, for the Watch tests:
 * A is a launchServer (its databases, its admin token), B a second app on
 * A's databases with its own listener and its own in-process bus, so a
 * change made on A reaches B's watchers only through the change log (B's
 * hub reads it on its safety-net interval). Torn down after the file's tests.
 */
export async function startWatchReplicas(options: { a?: AppOptions; b?: AppOptions } = {}): Promise<{ a: TestServer; b: TestServer; metalDatabaseUrl: string }> {
  const pool = { METAL_DB_POOL_SIZE: "6", MASTERDATA_DB_POOL_SIZE: "2" };
  const launched = await launchServer({ ...options.a, env: { ...pool, METAL_REPLICA_ID: "watch-a" }, dropInBackground: true });
  const dataDir = await mkdtemp(join(tmpdir(), "metal-watch-b-"));
  const config = loadConfig({
    METAL_LISTEN: "127.0.0.1:0",
    METAL_DATA_DIR: dataDir,
    DATABASE_URL: launched.metalDatabaseUrl,
    MASTERDATA_DATABASE_URL: launched.config.masterdataDatabaseUrl ?? "",
    METAL_REPLICA_ID: "watch-b",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    ...pool,
  });
  const app = await createApp(config, createLogger(config.logLevel, { pretty: false }), options.b);
  const listener: Listener = await listen(app.handler, config.listen, undefined, config.connections);
  afterAll(async () => {
    app.endStreams();
    await listener.close(1000);
    await app.close();
    await rm(dataDir, { recursive: true, force: true });
    await launched.stop();
  });
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
  const b: TestServer = {
    app,
    url: listener.url,
    dataDir,
    adminToken: launched.server.adminToken,
    console: undefined,
    client: (service, token) => createClient(service, transport("connect", token)),
    grpcClient: (service, token) => createClient(service, transport("grpc", token)),
  };
  return { a: launched.server, b, metalDatabaseUrl: launched.metalDatabaseUrl };
}
