import { mkdtemp, rm } from "node:fs/promises";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { createTransport } from "../../client/transport.js";
import { type App, createApp } from "../../server/app.js";
import { ensureAdminToken } from "../../server/auth/admin-token.js";
import { loadConfig } from "../../server/config.js";
import type { ConsoleServer } from "../../server/console/ssh-server.js";
import { type Listener, listen } from "../../server/http/listener.js";
import { createLogger } from "../../server/logger.js";
import { createScratchDatabase } from "./postgres.js";
import type { TestServer } from "./server-launch.js";

/** One replica of a pair: what a TestServer offers, plus its id and listener. */
export interface Replica extends TestServer {
  id: string;
  listener: Listener;
}

/**
 * Two control-plane replicas (distinct replica ids, each its own listener and
 * app) on ONE pair of scratch PostgreSQL databases, as replicas behind a load
 * balancer run; each writes its real listener address into its replica row.
 * launchServer makes a database per server, hence this helper.
 */
export async function launchReplicaPair(o: { consolePollMs?: number } = {}): Promise<{ a: Replica; b: Replica; stop: () => Promise<void> }> {
  const metalDb = await createScratchDatabase("metal_test", { from: "metal" });
  const mdDb = await createScratchDatabase("md_test", { from: "masterdata" });
  const dirs: string[] = [];
  const started: { app: App; listener: Listener }[] = [];

  async function start(id: string, console: boolean): Promise<Replica> {
    const dataDir = await mkdtemp(join(tmpdir(), `metal-replica-${id}-`));
    dirs.push(dataDir);
    const config = loadConfig({
      METAL_LISTEN: "127.0.0.1:0",
      METAL_DATA_DIR: dataDir,
      DATABASE_URL: metalDb.url,
      MASTERDATA_DATABASE_URL: mdDb.url,
      METAL_REPLICA_ID: id,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
      // Small pools: two apps on one database beside other test files.
      METAL_DB_POOL_SIZE: "6",
      MASTERDATA_DB_POOL_SIZE: "4",
    });
    const app = await createApp(config, createLogger(config.logLevel, { pretty: false }), { consolePollMs: o.consolePollMs });
    const listener = await listen(app.handler, config.listen, undefined, config.connections);
    started.push({ app, listener });
    // Port 0 was chosen at listen time: the others must dial the real one.
    await app.replica.setAddress(new URL(listener.url).host);
    const { token: adminToken } = await ensureAdminToken(app.db, app.authority, dataDir);
    const consoleServer: ConsoleServer | undefined = console ? await app.startConsole("127.0.0.1:0") : undefined;
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
    return {
      id,
      listener,
      app,
      url: listener.url,
      dataDir,
      adminToken,
      console: consoleServer,
      client: <S extends DescService>(service: S, token?: string): Client<S> => createClient(service, transport("connect", token)),
      grpcClient: <S extends DescService>(service: S, token?: string): Client<S> => createClient(service, transport("grpc", token)),
    };
  }

  const a = await start("replica-a", true);
  const b = await start("replica-b", false);
  return {
    a,
    b,
    async stop() {
      for (const s of started) s.app.endStreams();
      await Promise.allSettled(started.map((s) => s.listener.close(1000)));
      await Promise.allSettled(started.map((s) => s.app.close()));
      metalDb.dropLater();
      mdDb.dropLater();
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
    },
  };
}

/**
 * A round-robin TCP proxy, as an L4 load balancer: each accepted connection
 * goes to the next backend in turn. Counts the connections it handed out.
 */
export async function roundRobinProxy(backends: readonly string[]): Promise<{ url: string; connections: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let next = 0;
  const state = { connections: 0 };
  const server = createServer((client) => {
    const backend = new URL(`http://${backends[next++ % backends.length]}`);
    state.connections++;
    const upstream = connect({ host: backend.hostname, port: Number(backend.port) });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get connections() {
      return state.connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
