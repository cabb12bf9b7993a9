import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { createTransport } from "../../client/transport.js";
import { type App, type AppOptions, createApp } from "../../server/app.js";
import { ensureAdminToken } from "../../server/auth/admin-token.js";
import { type Config, loadConfig } from "../../server/config.js";
import type { ConsoleServer } from "../../server/console/ssh-server.js";
import { type Listener, listen } from "../../server/http/listener.js";
import { createLogger, type Logger } from "../../server/logger.js";
import { createScratchDatabase } from "./postgres.js";

export interface TestServer {
  app: App;
  url: string;
  dataDir: string;
  adminToken: string;
  /** The SSH console on a free port, when launched with `console: true`. */
  console: ConsoleServer | undefined;
  /** A Connect (HTTP/1.1, JSON) client, optionally with a bearer token. */
  client<S extends DescService>(service: S, token?: string): Client<S>;
  /** A gRPC (HTTP/2 h2c) client. */
  grpcClient<S extends DescService>(service: S, token?: string): Client<S>;
}

/**
 * The whole control plane listening on a free port, on two scratch PostgreSQL
 * databases (metal and masterdata); `stop` tears it all down. Tests use
 * startTestServer, benchmarks this.
 */
export async function launchServer(
  options: AppOptions & {
    console?: boolean;
    /** Settings as environment variables (timeouts, caps, stream limits, LOG_LEVEL), as main reads them. */
    env?: Record<string, string>;
    /** The server's logger (default: one at LOG_LEVEL, silent unless TEST_LOG_LEVEL says otherwise). */
    log?: Logger;
    /** `stop` leaves dropping the databases to the background instead of waiting for it (test files; see ScratchDatabase.dropLater). */
    dropInBackground?: boolean;
  } = {},
): Promise<{ server: TestServer; metalDatabaseUrl: string; config: Config; stop: () => Promise<void> }> {
  const metalDb = await createScratchDatabase("metal_test", { from: "metal" });
  const mdDb = await createScratchDatabase("md_test", { from: "masterdata" });
  const dataDir = await mkdtemp(join(tmpdir(), "metal-test-"));
  const config = loadConfig({
    METAL_LISTEN: "127.0.0.1:0",
    METAL_DATA_DIR: dataDir,
    DATABASE_URL: metalDb.url,
    MASTERDATA_DATABASE_URL: mdDb.url,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    ...options.env,
  });
  const app = await createApp(config, options.log ?? createLogger(config.logLevel, { pretty: false }), options);
  const { token: adminToken } = await ensureAdminToken(app.db, app.authority, dataDir);
  const listener: Listener = await listen(app.handler, config.listen, undefined, config.connections);
  const consoleServer = options.console ? await app.startConsole("127.0.0.1:0") : undefined;
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
  const stop = async () => {
    app.endStreams();
    await listener.close(1000);
    await app.close();
    if (options.dropInBackground) {
      metalDb.dropLater();
      mdDb.dropLater();
      await rm(dataDir, { recursive: true, force: true });
    } else {
      await Promise.all([metalDb.drop(), mdDb.drop(), rm(dataDir, { recursive: true, force: true })]);
    }
  };
  const server: TestServer = {
    app,
    url: listener.url,
    dataDir,
    adminToken,
    console: consoleServer,
    client: (service, token) => createClient(service, transport("connect", token)),
    grpcClient: (service, token) => createClient(service, transport("grpc", token)),
  };
  return { server, metalDatabaseUrl: metalDb.url, config, stop };
}
