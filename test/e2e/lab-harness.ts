import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { createTransport } from "../../client/transport.js";
import { FAST_TIMINGS, Lab, type LabTimings } from "../../edge/lab/lab.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import type { Machine, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { type Config, loadConfig } from "../../server/config.js";
import { createLogger } from "../../server/logger.js";
import { eventually } from "../helpers/eventually.js";
import { createScratchDatabase } from "../helpers/postgres.js";
import { scaled } from "../helpers/timeouts.js";

/** A lab on scratch PostgreSQL databases and a scratch data directory, with fast timings. */
export interface LabUnderTest {
  lab: Lab;
  config: Config;
  dir: string;
  admin<S extends DescService>(service: S): Client<S>;
  machine(id: string): Promise<Machine>;
  /** The machine's event types, newest first. */
  events(id: string): Promise<T[]>;
  /** Port -> "vrf<N>" / "default" (firewall) / "pxe" / "down", as the leaf's rendered interfaces file says, for every front port. */
  portModes(leaf: string): Promise<Record<string, string>>;
  /** The leaf's current generation is applied and reported. */
  synced(leaf: string): Promise<void>;
  /** Stops the whole lab and starts it again on the same databases and data directory (a second `npm start`, with `--machines count` when given). */
  restartLab(count?: number): Promise<void>;
  dispose(): Promise<void>;
}

/** Kept here for the e2e files that import it from the harness; the one definition is in test/helpers. */
export { eventually };

/**
 * The lab's fast timings with a waiting lease that outlasts a starved event loop: renewals come every second,
 * but on a loaded machine (two labs side by side, a benchmark beside the suite) a 3 s lease lapsed between two
 * of them and a waiting machine could not be allocated. No lab test waits for a lease to run out.
 */
export const TEST_LAB_TIMINGS: LabTimings = { ...FAST_TIMINGS, wait: { ...FAST_TIMINGS.wait, leaseMs: scaled(15_000) } };

export async function startLabUnderTest(machines = 8, timings: LabTimings = TEST_LAB_TIMINGS, env: Record<string, string> = {}): Promise<LabUnderTest> {
  const metalDb = await createScratchDatabase("lab_metal", { from: "metal" });
  const mdDb = await createScratchDatabase("lab_md", { from: "masterdata" });
  const dir = await mkdtemp(join(tmpdir(), "metal-lab-test-"));
  const config = loadConfig({
    METAL_LISTEN: "127.0.0.1:0",
    METAL_CONSOLE_LISTEN: "127.0.0.1:0",
    METAL_DATA_DIR: join(dir, "data"),
    DATABASE_URL: metalDb.url,
    MASTERDATA_DATABASE_URL: mdDb.url,
    // Pools the size of the test servers': two test files side by side stay under PostgreSQL's 100 connections.
    METAL_DB_POOL_SIZE: "10",
    MASTERDATA_DB_POOL_SIZE: "4",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    ...env,
  });
  const start = (count = machines) =>
    Lab.start({
      config,
      log: createLogger(config.logLevel, { pretty: false }),
      machines: count,
      labListen: "127.0.0.1:0",
      timings,
      metalctlConfig: join(dir, "metalctl", "config.yaml"),
      // Never the SSH keys of whoever runs the tests: the lab generates one in its metalctl directory.
      home: join(dir, "home"),
    });
  let lab = await start();
  const admin = <S extends DescService>(service: S) => createClient(service, createTransport({ baseUrl: lab.apiUrl, protocol: "connect", token: lab.adminToken }));
  const machine = async (id: string) => (await admin(AdminMachineService).get({ id })).machine!;
  const iface = async (leaf: string, name: string) => {
    const lines = (await readFile(join(lab.dir, "switches", leaf, "etc/network/interfaces"), "utf8")).split("\n");
    const at = lines.indexOf(`iface ${name}`);
    const out: string[] = [];
    for (const l of at === -1 ? [] : lines.slice(at + 1)) {
      if (!l.startsWith("    ")) break;
      out.push(l.trim());
    }
    return out;
  };
  const self: LabUnderTest = {
    get lab() {
      return lab;
    },
    config,
    dir,
    admin,
    machine,
    events: async (id) => ((await machine(id)).events?.log ?? []).map((e) => e.type),
    async portModes(leaf) {
      const out: Record<string, string> = {};
      for (const m of lab.machines) {
        const l = await iface(leaf, m.port);
        out[m.port] = l.includes("link-down yes")
          ? "down"
          : (l.find((x) => x.startsWith("vrf "))?.slice(4) ?? (l.some((x) => x.startsWith("bridge-access ")) ? "pxe" : l.includes("mtu 9216") ? "default" : "?"));
      }
      return out;
    },
    async synced(leaf) {
      // The admin API shows no generation; the switch row's version is the generation metal-core must report back.
      await eventually(`${leaf} to apply its current generation`, async () => {
        const res = (await lab.app!.db.execute(sql`select version::int as version, last_sync from switches where id = ${leaf}`)) as unknown as {
          rows: { version: number; last_sync: { generation: number; error: string } | null }[];
        };
        const row = res.rows[0];
        return row !== undefined && row.last_sync?.generation === row.version && row.last_sync.error === "" && lab.leaves.get(leaf)!.core.appliedGeneration === row.version;
      });
    },
    async restartLab(count) {
      await lab.stop();
      lab = await start(count);
    },
    async dispose() {
      await lab.stop();
      metalDb.dropLater();
      mdDb.dropLater();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return self;
}
