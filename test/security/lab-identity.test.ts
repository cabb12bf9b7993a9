import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { eventually } from "../e2e/lab-harness.js";
import { createScratchDatabase } from "../helpers/postgres.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * Issue 12 item 12: a lab killed with SIGKILL before it ever saved its
 * machines must come back with the same machines. The lab runs as a process
 * of its own (a kill -9 of the test worker is not an option), with test
 * timings and two machines; it prints its address, admin token and machine
 * ids once started, and is killed as soon as the control plane knows the
 * machines' BMCs, long before anything makes the lab save them on its own
 * (an allocation, a boot order change, a clean stop).
 */
const LAB_SCRIPT = `
const root = process.env.LAB_TEST_ROOT;
const { Lab, FAST_TIMINGS } = await import(root + "/edge/lab/lab.ts");
const { loadConfig } = await import(root + "/server/config.ts");
const { createLogger } = await import(root + "/server/logger.ts");
const config = loadConfig(process.env);
const lab = await Lab.start({ config, log: createLogger(config.logLevel, { pretty: false }), machines: 2, labListen: "127.0.0.1:0", timings: FAST_TIMINGS, metalctlConfig: false, frrCheck: false });
process.stdout.write(JSON.stringify({ apiUrl: lab.apiUrl, adminToken: lab.adminToken, machines: lab.machines.map((m) => m.uuid) }) + "\\n");
`;

interface StartedLab {
  child: ChildProcess;
  apiUrl: string;
  adminToken: string;
  machines: string[];
}

let dir: string;
let env: NodeJS.ProcessEnv;
const drops: (() => void)[] = [];
const children = new Set<ChildProcess>();

beforeAll(async () => {
  const metalDb = await createScratchDatabase("labid_metal", { from: "metal" });
  const mdDb = await createScratchDatabase("labid_md", { from: "masterdata" });
  drops.push(metalDb.dropLater, mdDb.dropLater);
  dir = await mkdtemp(join(tmpdir(), "lab-identity-"));
  env = {
    PATH: process.env.PATH,
    HOME: dir,
    LAB_TEST_ROOT: process.cwd(),
    METAL_LISTEN: "127.0.0.1:0",
    METAL_CONSOLE_LISTEN: "127.0.0.1:0",
    METAL_DATA_DIR: join(dir, "data"),
    DATABASE_URL: metalDb.url,
    MASTERDATA_DATABASE_URL: mdDb.url,
    METAL_DB_POOL_SIZE: "10",
    MASTERDATA_DB_POOL_SIZE: "4",
    LOG_LEVEL: "silent",
  };
});

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  for (const drop of drops) drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function startLabProcess(): Promise<StartedLab> {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", LAB_SCRIPT], { env, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.once("exit", () => children.delete(child));
  let out = "";
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line) resolve({ child, ...(JSON.parse(line) as Omit<StartedLab, "child">) });
    });
    child.once("exit", (code) => reject(new Error(`the lab exited (${code}) before it started: ${err.slice(-2000)}`)));
  });
}

const adminOf = (lab: StartedLab) => createClient(AdminMachineService, createTransport({ baseUrl: lab.apiUrl, protocol: "connect", token: lab.adminToken }));

describe("the lab after kill -9", () => {
  it(
    "comes back with the same machines, and no two machine records share a BMC address",
    async () => {
      const first = await startLabProcess();
      const admin1 = adminOf(first);
      // The control plane knows the machines by their BMCs: records that a lab inventing new machines would collide with.
      for (const id of first.machines) await eventually(`the BMC report of ${id}`, async () => (await admin1.get({ id })).machine?.bmc?.address, 30_000);
      const killed = new Promise((r) => first.child.once("exit", r));
      first.child.kill("SIGKILL");
      await killed;

      const restartedAt = new Date();
      const second = await startLabProcess();
      expect(second.machines).toEqual(first.machines);
      const admin2 = adminOf(second);
      // Each machine boots again (a BMC reset, as on any restart) and waits: a Waiting newer than the restart.
      for (const id of second.machines) {
        await eventually(
          `${id} waiting again`,
          async () => {
            const m = (await admin2.get({ id })).machine!;
            const newest = m.events?.log[0];
            return m.waiting && newest?.type === T.WAITING && newest.time !== undefined && timestampDate(newest.time) >= restartedAt;
          },
          60_000,
        );
      }
      const all = (await admin2.list({ partition: "lab" })).machines;
      expect(all.map((m) => m.id).sort()).toEqual([...first.machines].sort());
      const addresses = all.map((m) => m.bmc?.address ?? "");
      expect(new Set(addresses).size).toBe(addresses.length);
      second.child.kill("SIGTERM");
    },
    scaled(180_000),
  );
});
