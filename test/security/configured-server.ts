import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll } from "vitest";
import { createApp, type App } from "../../server/app.js";
import { ensureAdminToken } from "../../server/auth/admin-token.js";
import { loadConfig, type Config } from "../../server/config.js";
import { listen } from "../../server/http/listener.js";
import { createLogger } from "../../server/logger.js";
import { createScratchDatabase } from "../helpers/postgres.js";

export interface ConfiguredServer {
  app: App;
  config: Config;
  url: string;
  adminToken: string;
  client<S extends DescService>(service: S, token?: string): Client<S>;
  grpcClient<S extends DescService>(service: S, token?: string): Client<S>;
}

const bearer = (token: string | undefined): Interceptor[] => (token ? [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))] : []);

/**
 * The whole control plane as main starts it, configured through its
 * environment variables (`env`: timeouts, caps, stream limits), on scratch
 * PostgreSQL databases; torn down after the calling file's tests.
 */
export async function startConfiguredServer(env: Record<string, string>): Promise<ConfiguredServer> {
  const metalDb = await createScratchDatabase("metal_sec");
  const mdDb = await createScratchDatabase("md_sec");
  const dataDir = await mkdtemp(join(tmpdir(), "metal-sec-"));
  const config = loadConfig({
    METAL_LISTEN: "127.0.0.1:0",
    METAL_DATA_DIR: dataDir,
    DATABASE_URL: metalDb.url,
    MASTERDATA_DATABASE_URL: mdDb.url,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    ...env,
  });
  const app = await createApp(config, createLogger(config.logLevel, { pretty: false }));
  const { token: adminToken } = await ensureAdminToken(app.db, app.authority, dataDir);
  const listener = await listen(app.handler, config.listen, undefined, config.connections);
  afterAll(async () => {
    app.endStreams();
    await listener.close(1000);
    await app.close();
    await Promise.all([metalDb.drop(), mdDb.drop(), rm(dataDir, { recursive: true, force: true })]);
  });
  return {
    app,
    config,
    url: listener.url,
    adminToken,
    client: (service, token) => createClient(service, createConnectTransport({ baseUrl: listener.url, httpVersion: "1.1", interceptors: bearer(token) })),
    grpcClient: (service, token) => createClient(service, createGrpcTransport({ baseUrl: listener.url, interceptors: bearer(token) })),
  };
}
