import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createTransport } from "../../client/transport.js";
import { Lab } from "../../edge/lab/lab.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import type { Machine, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { loadConfig } from "../../server/config.js";
import { createLogger } from "../../server/logger.js";
import { createScratchDatabase } from "./postgres.js";
import { CLUSTER_HEARTBEAT, CLUSTER_TIMEOUT_MS, CLUSTER_TIMINGS } from "./replica-cluster.js";

/**
 * The lab of `npm start -- --replicas N` as a person starts it without
 * MQTT_URL: N metal-api processes on scratch PostgreSQL databases, woken
 * through the aedes broker the lab embeds (edge/lab/broker.ts). Unlike
 * test/helpers/replica-cluster.ts it brings no broker of its own.
 */
export interface EmbeddedBrokerLab {
  lab: Lab;
  /**
   * The MQTT_URL the lab handed its replicas (the embedded broker's, with
   * its user name and random password): what a client with the lab's
   * credentials presents.
   */
  brokerUrl: string;
  /** The operator admin's client, through the proxy (replica undefined) or straight to replica `replica` (0-based). */
  admin<S extends DescService>(service: S, replica?: number): Client<S>;
  machine(id: string): Promise<Machine>;
  /** The machine's event types, newest first. */
  events(id: string): Promise<T[]>;
  dispose(): Promise<void>;
}

export interface EmbeddedBrokerLabOptions {
  machines?: number;
  replicas?: number;
  /** See LabOptions.dial: pins a daemon to one replica (undefined: the proxy). */
  dial?: (daemon: string, replicaUrls: readonly string[]) => string | undefined;
}

export async function startEmbeddedBrokerLab(opts: EmbeddedBrokerLabOptions = {}): Promise<EmbeddedBrokerLab> {
  const [metalDb, mdDb] = await Promise.all([createScratchDatabase("labr_metal", { from: "metal" }), createScratchDatabase("labr_md", { from: "masterdata" })]);
  const dir = await mkdtemp(join(tmpdir(), "metal-lab-replicas-"));
  // An environment of its own, not process.env: an MQTT_URL of the shell must not replace the embedded broker.
  const config = loadConfig(
    {
      METAL_LISTEN: "127.0.0.1:0",
      METAL_CONSOLE_LISTEN: "127.0.0.1:0",
      METAL_DATA_DIR: join(dir, "data"),
      DATABASE_URL: metalDb.url,
      MASTERDATA_DATABASE_URL: mdDb.url,
      // Small pools, as replica-cluster.ts: two such files side by side stay under PostgreSQL's connections.
      METAL_DB_POOL_SIZE: "6",
      MASTERDATA_DB_POOL_SIZE: "3",
      METAL_REPLICA_HEARTBEAT: CLUSTER_HEARTBEAT,
      METAL_REPLICA_TIMEOUT: `${CLUSTER_TIMEOUT_MS}ms`,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    },
    [],
  );
  const cleanUp = async () => {
    metalDb.dropLater();
    mdDb.dropLater();
    await rm(dir, { recursive: true, force: true });
  };
  let lab: Lab;
  try {
    lab = await Lab.start({
      config,
      log: createLogger(config.logLevel, { pretty: false }),
      machines: opts.machines ?? 1,
      replicas: opts.replicas ?? 2,
      dial: opts.dial,
      labListen: "127.0.0.1:0",
      timings: CLUSTER_TIMINGS,
      metalctlConfig: join(dir, "metalctl", "config.yaml"),
      home: join(dir, "home"),
    });
  } catch (err) {
    await cleanUp();
    throw err;
  }
  const brokerUrl = lab.replicas[0]?.opts.env.MQTT_URL;
  if (!brokerUrl) {
    await lab.stop();
    await cleanUp();
    throw new Error("the lab handed its replicas no MQTT_URL");
  }
  const admin = <S extends DescService>(service: S, replica?: number) =>
    createClient(service, createTransport({ baseUrl: replica === undefined ? lab.apiUrl : lab.replicas[replica]!.url, protocol: "connect", token: lab.adminToken }));
  const machine = async (id: string) => (await admin(AdminMachineService).get({ id })).machine!;
  return {
    lab,
    brokerUrl,
    admin,
    machine,
    events: async (id) => ((await machine(id)).events?.log ?? []).map((e) => e.type),
    async dispose() {
      await lab.stop();
      await cleanUp();
    },
  };
}
