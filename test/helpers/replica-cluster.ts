import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { createTransport } from "../../client/transport.js";
import { FAST_TIMINGS, Lab, type LabTimings } from "../../edge/lab/lab.js";
import type { ReplicaProcess } from "../../edge/lab/replicas.js";
import { ConnectionService, DaemonKind } from "../../gen/metal/admin/v1/connection_pb.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import type { Machine, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { type Config, loadConfig } from "../../server/config.js";
import type { DbHandle } from "../../server/db/handle.js";
import { openMetalDatabase } from "../../server/db/metal-database.js";
import { createLogger } from "../../server/logger.js";
import { type PrivateBroker, startPrivateBroker } from "./mosquitto.js";
import { createScratchDatabase } from "./postgres.js";
import { scaled } from "./timeouts.js";

/**
 * Two (or more) metal-api processes on one pair of scratch PostgreSQL
 * databases, woken through a private Mosquitto of the test's own, behind the
 * lab's round-robin TCP proxies (API and SSH console), with the lab's
 * simulated partition dialling the proxy as through a load balancer. It is
 * the lab of `npm start -- --replicas N`, with short replica heartbeats so
 * that a killed replica is reaped within seconds.
 */
export interface ReplicaCluster {
  lab: Lab;
  config: Config;
  dir: string;
  broker: PrivateBroker;
  /** The test's own pool on the shared metal database, for what only SQL shows (replica rows, allocation counts). */
  db: DbHandle;
  replicas: readonly ReplicaProcess[];
  /** A Connect client through the proxy (replica undefined) or straight to replica `replica` (0-based). */
  client<S extends DescService>(service: S, token: string, replica?: number): Client<S>;
  /** The operator admin's client, through the proxy or straight to one replica. */
  admin<S extends DescService>(service: S, replica?: number): Client<S>;
  machine(id: string): Promise<Machine>;
  /** The machine's event types, newest first. */
  events(id: string): Promise<T[]>;
  /** Index of the replica whose id is `id`. */
  indexOf(replicaId: string): number;
  /** Index of the replica that holds daemon `id` of `kind`, as ConnectionService.List on replica `ask` says; undefined while none does. */
  holderOf(kind: DaemonKind, id: string, ask?: number): Promise<number | undefined>;
  /** kill -9 of replica `i`; resolves when the process is gone. */
  kill(i: number): Promise<void>;
  /** Starts replica `i` again on its addresses and id. */
  restart(i: number): Promise<void>;
  dispose(): Promise<void>;
}

export interface ReplicaClusterOptions {
  machines?: number;
  replicas?: number;
  timings?: LabTimings;
  /** See LabOptions.dial: pins a daemon to one replica (undefined: the proxy). */
  dial?: (daemon: string, replicaUrls: readonly string[]) => string | undefined;
  /** More replica settings (environment variables). */
  env?: Record<string, string>;
}

/** Heartbeats every 300 ms: a replica that stops is reaped after the (scaled) timeout, seconds instead of the default 30 s. */
export const CLUSTER_HEARTBEAT = "300ms";
export const CLUSTER_TIMEOUT_MS = scaled(3_000);

/** The lab's fast timings with a waiting lease that outlasts a starved event loop (as test/e2e/lab-harness.ts). */
export const CLUSTER_TIMINGS: LabTimings = { ...FAST_TIMINGS, wait: { ...FAST_TIMINGS.wait, leaseMs: scaled(15_000) } };

export async function startReplicaCluster(opts: ReplicaClusterOptions = {}): Promise<ReplicaCluster> {
  const metalDb = await createScratchDatabase("repl_metal", { from: "metal" });
  const mdDb = await createScratchDatabase("repl_md", { from: "masterdata" });
  const dir = await mkdtemp(join(tmpdir(), "metal-replicas-"));
  const broker = await startPrivateBroker();
  const config = loadConfig({
    METAL_LISTEN: "127.0.0.1:0",
    METAL_CONSOLE_LISTEN: "127.0.0.1:0",
    METAL_DATA_DIR: join(dir, "data"),
    DATABASE_URL: metalDb.url,
    MASTERDATA_DATABASE_URL: mdDb.url,
    MQTT_URL: broker.url,
    // Every replica runs its own pools: smaller ones keep two such files side by side under PostgreSQL's connections.
    METAL_DB_POOL_SIZE: "6",
    MASTERDATA_DB_POOL_SIZE: "3",
    METAL_REPLICA_HEARTBEAT: CLUSTER_HEARTBEAT,
    METAL_REPLICA_TIMEOUT: `${CLUSTER_TIMEOUT_MS}ms`,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
  });
  const own = await openMetalDatabase({ url: metalDb.url, dataDir: undefined, poolSize: 2 });
  let lab: Lab;
  try {
    lab = await Lab.start({
      config,
      log: createLogger(config.logLevel, { pretty: false }),
      machines: opts.machines ?? 4,
      replicas: opts.replicas ?? 2,
      replicaEnv: opts.env,
      dial: opts.dial,
      labListen: "127.0.0.1:0",
      timings: opts.timings ?? CLUSTER_TIMINGS,
      metalctlConfig: join(dir, "metalctl", "config.yaml"),
      home: join(dir, "home"),
    });
  } catch (err) {
    await Promise.allSettled([own.close(), broker.dispose()]);
    metalDb.dropLater();
    mdDb.dropLater();
    throw err;
  }
  const baseUrl = (replica?: number) => (replica === undefined ? lab.apiUrl : lab.replicas[replica]!.url);
  const client = <S extends DescService>(service: S, token: string, replica?: number) => createClient(service, createTransport({ baseUrl: baseUrl(replica), protocol: "connect", token }));
  const admin = <S extends DescService>(service: S, replica?: number) => client(service, lab.adminToken, replica);
  const machine = async (id: string) => (await admin(AdminMachineService).get({ id })).machine!;
  const indexOf = (replicaId: string) => lab.replicas.findIndex((r) => r.id === replicaId);
  return {
    lab,
    config,
    dir,
    broker,
    db: own.db,
    replicas: lab.replicas,
    client,
    admin,
    machine,
    events: async (id) => ((await machine(id)).events?.log ?? []).map((e) => e.type),
    indexOf,
    async holderOf(kind, id, ask) {
      const { connections } = await admin(ConnectionService, ask).list({ kind });
      const c = connections.find((x) => x.id === id);
      return c === undefined ? undefined : indexOf(c.replica);
    },
    kill: (i) => lab.replicas[i]!.kill("SIGKILL"),
    restart: (i) => lab.replicas[i]!.start(),
    async dispose() {
      await lab.stop();
      await Promise.allSettled([own.close(), broker.dispose()]);
      metalDb.dropLater();
      mdDb.dropLater();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Rows of the replica table, by id. */
export async function replicaRows(db: DbHandle): Promise<string[]> {
  const res = (await db.execute(sql`select id from replicas order by id`)) as unknown as { rows: { id: string }[] };
  return res.rows.map((r) => r.id);
}

/** Daemon-session rows as "kind/daemon@replica". */
export async function sessionRows(db: DbHandle): Promise<string[]> {
  const res = (await db.execute(sql`select kind, daemon_id, replica_id from daemon_sessions order by kind, daemon_id`)) as unknown as {
    rows: { kind: string; daemon_id: string; replica_id: string }[];
  };
  return res.rows.map((r) => `${r.kind}/${r.daemon_id}@${r.replica_id}`);
}

export { DaemonKind };
