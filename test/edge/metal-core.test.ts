import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MetalCore } from "../../edge/core/metal-core.js";
import { SimSwitch } from "../../edge/sim/switch.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { SwitchService as AdminSwitchService, SwitchPortState } from "../../gen/metal/admin/v1/switch_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { eventually } from "../helpers/eventually.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

const GiB = 2n ** 30n;
const TIMING = { heartbeatMs: 100, backoff: { initialMs: 50, maxMs: 400 }, lldpPollMs: 30, phoneHomeMs: 150, retryMs: 150 };

let server: TestServer;
let fixture: PartitionFixture;
let root: string;
const leaves = new Map<string, { sim: SimSwitch; core: MetalCore }>();
const hammers: AbortController[] = [];

const rows = async <R>(q: ReturnType<typeof sql>) => ((await server.app.db.execute(q)) as unknown as { rows: R[] }).rows;

function startCore(id: string, sim: SimSwitch): MetalCore {
  const core = new MetalCore({ url: server.url, token: fixture.infraToken, partition: "p1", rack: "r1", os: sim, timing: TIMING, log: process.env.CORE_LOG ? (l, m, f) => console.log(id, l, m, f) : undefined });
  core.start();
  return core;
}

/** The indented lines of one iface block of a leaf's interfaces file. */
async function iface(leaf: string, name: string): Promise<string[]> {
  const text = await readFile(join(root, leaf, "etc/network/interfaces"), "utf8");
  const lines = text.split("\n");
  const at = lines.indexOf(`iface ${name}`);
  const out: string[] = [];
  for (const l of at === -1 ? [] : lines.slice(at + 1)) {
    if (!l.startsWith("    ")) break;
    out.push(l.trim());
  }
  return out;
}

const frr = (leaf: string) => readFile(join(root, leaf, "etc/frr/frr.conf"), "utf8");

/** Port -> "vrf<N>" / "pxe" / "down", for the front ports of a leaf, as its rendered interfaces file says. */
async function portModes(leaf: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (let i = 1; i <= 8; i++) {
    const lines = await iface(leaf, `swp${i}`);
    out[`swp${i}`] = lines.includes("link-down yes") ? "down" : (lines.find((l) => l.startsWith("vrf "))?.slice(4) ?? (lines.includes("bridge-access 4000") ? "pxe" : "?"));
  }
  return out;
}

const allPxe = (except: Record<string, string> = {}) => ({ ...Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`swp${i + 1}`, "pxe"])), ...except });

/** Plays metal-hammer for a machine cabled to `port` of leaf01 and leaf02, until it waits. */
async function bootMachine(port: string): Promise<string> {
  const id = randomUUID();
  const boot = server.grpcClient(BootService, fixture.infraToken);
  const events = server.client(EventService, fixture.infraToken);
  await boot.dhcp({ partition: "p1", machineId: id });
  await events.send({ partition: "p1", events: [{ machineId: id, type: T.PREPARING }] });
  await boot.register({
    partition: "p1",
    machineId: id,
    hardware: {
      memory: 16n * GiB,
      cpus: [{ model: "Xeon", cores: 4, threads: 8 }],
      disks: [{ name: "/dev/sda", size: 240_000_000_000n }],
      nics: ["leaf01", "leaf02"].map((l, i) => ({ name: `eth${i}`, mac: `0c:c4:7a:00:0${port.slice(3)}:0${i}`, neighbors: [{ hostname: l, port }] })),
    },
  });
  await events.send({ partition: "p1", events: [T.REGISTERING, T.WAITING].map((type) => ({ machineId: id, type })) });
  const abort = new AbortController();
  hammers.push(abort);
  void (async () => {
    try {
      for await (const msg of boot.wait({ partition: "p1", machineId: id }, { signal: abort.signal })) if (msg.allocation) return;
    } catch {
      // the test ends the stream
    }
  })();
  await eventually("the machine to wait", async () => (await server.client(AdminMachineService, server.adminToken).get({ id })).machine?.waiting);
  return id;
}

let tenant: ReturnType<typeof server.client<typeof MachineService>>;

async function allocateAndInstall(id: string): Promise<number> {
  const { machine } = await tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: id.slice(0, 8), networks: [fixture.primary.pb], machineId: id });
  await server.client(EventService, fixture.infraToken).send({ partition: "p1", events: [T.INSTALLING, T.BOOTING_NEW_KERNEL].map((type) => ({ machineId: id, type })) });
  await server.client(BootService, fixture.infraToken).installationSucceeded({
    partition: "p1",
    machineId: id,
    consolePassword: "pw",
    bootInfo: { imageId: "debian-12.0.20250101", primaryDisk: "/dev/sda", osPartition: "/dev/sda2", kernel: "/boot/vmlinuz", initrd: "/boot/initrd", cmdline: "root=/dev/sda2", bootloaderId: "debian" },
  });
  return machine!.allocation!.networks[0]!.vrf;
}

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 1_000 } });
  fixture = await setUpPartition(server);
  root = await mkdtemp(join(tmpdir(), "metal-core-test-"));
  for (const id of ["leaf01", "leaf02"]) {
    const sim = new SimSwitch({ id, root: join(root, id) });
    leaves.set(id, { sim, core: startCore(id, sim) });
  }
  const editor = (await server.client(AdminTokens, server.adminToken).create({ subject: "ed", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
  tenant = server.client(MachineService, editor);
});

afterAll(async () => {
  await Promise.all([...leaves.values()].map((l) => l.core.stop()));
  for (const h of hammers) h.abort();
  fixture?.stopAll();
  await rm(root, { recursive: true, force: true });
});

const switchRow = async (id: string) =>
  (
    await rows<{
      version: number;
      last_sync: { generation: number; error: string } | null;
      last_sync_error: { generation: number; error: string } | null;
      nics: { name: string; desired?: string; actual?: string }[];
    }>(sql`select version::int as version, last_sync, last_sync_error, nics from switches where id = ${id}`)
  )[0]!;

/** The leaf has applied (and reported) the switch's current generation. */
const synced = (leaf: string) =>
  eventually(`${leaf} to sync its current generation`, async () => {
    const row = await switchRow(leaf);
    return row.last_sync?.generation === row.version && row.last_sync.error === "" && leaves.get(leaf)!.core.appliedGeneration === row.version && row;
  });

describe("metal-core on simulated leaves against a real control plane", () => {
  let a: string;
  let b: string;
  let vrfA: number;

  it("registers its switch with all front ports and gets its config: every port in the PXE VLAN", async () => {
    await synced("leaf01");
    await synced("leaf02");
    const sw = (await server.client(AdminSwitchService, server.adminToken).get({ id: "leaf01" })).switch!;
    expect(sw.nics.map((n) => n.name)).toEqual(["swp1", "swp2", "swp3", "swp4", "swp5", "swp6", "swp7", "swp8"]);
    expect(sw.lastSync?.error).toBe("");
    expect(await portModes("leaf01")).toEqual(allPxe());
  });

  it("moves exactly an installed machine's ports into its tenant VRF, with its route filter", async () => {
    a = await bootMachine("swp2");
    b = await bootMachine("swp3");
    await synced("leaf01");
    const before = (await switchRow("leaf01")).version;
    vrfA = await allocateAndInstall(a);
    expect(vrfA).toBeGreaterThan(0);
    // Allocated but installing: still PXE. Installed: the tenant VRF, on both leaves, on swp2 only.
    for (const leaf of ["leaf01", "leaf02"]) {
      // Both files: metal-core writes the interfaces first and FRR's config after them.
      await eventually(`${leaf} to put swp2 into vrf${vrfA}`, async () => (await portModes(leaf)).swp2 === `vrf${vrfA}` && (await frr(leaf)).includes(`vrf vrf${vrfA}\n`));
      expect(await portModes(leaf)).toEqual(allPxe({ swp2: `vrf${vrfA}` }));
      expect(await iface(leaf, `vni${vrfA}`)).toContain(`vxlan-id ${vrfA}`);
    }
    expect((await switchRow("leaf01")).version).toBeGreaterThan(before);
    const conf = await frr("leaf01");
    expect(conf).toContain(`router bgp 4200000011 vrf vrf${vrfA}\n`);
    expect(conf).toContain(" neighbor swp2 interface peer-group MACHINE");
    expect(conf).not.toContain("neighbor swp3 interface");
    const prefixes = (await rows<{ prefix: string }>(sql`select prefix::text as prefix from prefixes where network_id = ${fixture.primary.pb} order by family`)).map((r) => r.prefix);
    expect(prefixes.length).toBeGreaterThan(0);
    for (const p of prefixes) expect(conf).toMatch(new RegExp(`prefix-list swp2-in6?-pl seq \\d+ permit ${p.replace(/[.]/g, "\\.")} le (32|128)`));
    await synced("leaf01");
  });

  it("forwards LLDP from the installed OS as batched Phoned Home events", async () => {
    const admin = server.client(AdminMachineService, server.adminToken);
    leaves.get("leaf01")!.sim.setNeighbour("swp2", a, "provisioned since 2026-12-01T11:00:00Z");
    // metal-hammer's frames ("waiting for installation") are not phone-home.
    leaves.get("leaf01")!.sim.setNeighbour("swp3", b, "metal-hammer waiting since 2026-12-01T11:00:00Z for installation");
    const first = await eventually("Phoned Home of the installed machine", async () => {
      const events = (await admin.get({ id: a })).machine?.events;
      return events?.log[0]?.type === T.PHONED_HOME && timestampMs(events.lastEventTime!);
    });
    // The installed machine still sends frames: a later batch touches its last event time. That batch went out after the
    // first one was done, and the first came from the poll that saw both frames, so b's frame was judged by now.
    await eventually("a later phone-home batch", async () => timestampMs((await admin.get({ id: a })).machine!.events!.lastEventTime!) > first);
    expect((await admin.get({ id: b })).machine?.events?.log.some((e) => e.type === T.PHONED_HOME)).toBe(false);
    leaves.get("leaf01")!.sim.removeNeighbour("swp2");
    leaves.get("leaf01")!.sim.removeNeighbour("swp3");
  });

  it("shuts and reopens a port on an operator's toggle; the toggle is cleared once metal-core confirms it", async () => {
    const admin = server.client(AdminSwitchService, server.adminToken);
    await admin.port({ id: "leaf01", nic: "swp3", state: SwitchPortState.DOWN });
    await eventually("swp3 to be shut", async () => (await portModes("leaf01")).swp3 === "down");
    const row = await eventually("the toggle to be confirmed", async () => {
      const r = await switchRow("leaf01");
      const n = r.nics.find((x) => x.name === "swp3")!;
      return n.desired === undefined && n.actual === "down" && r;
    });
    expect(row.last_sync?.generation).toBe(row.version);
    expect((await admin.get({ id: "leaf01" })).switch?.nics.find((n) => n.name === "swp3")?.state).toBe(SwitchPortState.DOWN);
    await admin.port({ id: "leaf01", nic: "swp3", state: SwitchPortState.UP });
    await eventually("swp3 to be open again", async () => (await portModes("leaf01")).swp3 === "pxe");
    await synced("leaf01");
  });

  it("puts a freed machine's ports back into the PXE VLAN", async () => {
    await tenant.delete({ id: a, project: "pb" });
    for (const leaf of ["leaf01", "leaf02"]) {
      // metal-core writes the interfaces and then FRR's config: wait for both files, not only the first.
      await eventually(`${leaf} to put swp2 back into PXE`, async () => (await portModes(leaf)).swp2 === "pxe" && !(await frr(leaf)).includes(`vrf vrf${vrfA}`));
      expect(await portModes(leaf)).toEqual(allPxe());
      expect(await frr(leaf)).not.toContain(`vrf vrf${vrfA}`);
    }
  });

  it("gets the full current state after its session was cut, and after a restart that missed changes", async () => {
    const leaf01 = leaves.get("leaf01")!;
    const sessions = leaf01.core.sessions;
    leaf01.core.interruptSession();
    await eventually("a new session", async () => leaf01.core.sessions > sessions && leaf01.core.connected);
    await synced("leaf01");
    expect(await portModes("leaf01")).toEqual(allPxe());

    // metal-core is down while machine b is installed: nothing can reach it.
    await leaf01.core.stop();
    const vrfB = await allocateAndInstall(b);
    // leaf02's metal-core renders the change: it was published, and leaf01 could not take it.
    await eventually("leaf02 to put swp3 into the tenant VRF", async () => (await portModes("leaf02")).swp3 === `vrf${vrfB}`);
    expect((await portModes("leaf01")).swp3).toBe("pxe");
    leaf01.core = startCore("leaf01", leaf01.sim);
    await eventually("the restarted metal-core to catch up", async () => (await portModes("leaf01")).swp3 === `vrf${vrfB}`);
    expect(await portModes("leaf01")).toEqual(allPxe({ swp3: `vrf${vrfB}` }));
    await synced("leaf01");
    // leaf02's session never broke and followed along.
    expect(await portModes("leaf02")).toEqual(allPxe({ swp3: `vrf${vrfB}` }));
  });

  it("keeps the running config when a new one fails validation, reports the error, and applies it once it passes", async () => {
    const leaf01 = leaves.get("leaf01")!;
    const before = await readFile(join(root, "leaf01", "etc/network/interfaces"), "utf8");
    leaf01.sim.rejectNextCheck("line 12: % Unknown command: neighbor swp3 bogus");
    await tenant.delete({ id: b, project: "pb" });
    const failed = await eventually("the failed sync to be reported", async () => {
      const r = await switchRow("leaf01");
      return r.last_sync_error?.generation === r.version && r;
    });
    expect(failed.last_sync_error?.error).toBe("validation failed: line 12: % Unknown command: neighbor swp3 bogus");
    expect(leaf01.core.lastSync?.error).toMatch(/^validation failed/);
    // The candidate was never swapped in: the switch still runs the previous config.
    expect(await readFile(join(root, "leaf01", "etc/network/interfaces"), "utf8")).toBe(before);
    expect(leaf01.sim.runningPort("swp3")?.vrf).toMatch(/^vrf\d+$/);
    // The retry passes (the check refused only once): PXE again, and the error stays on record.
    await eventually("the retried sync", async () => (await portModes("leaf01")).swp3 === "pxe");
    const ok = await synced("leaf01");
    expect(ok.last_sync_error?.error).toMatch(/^validation failed/);
    expect(leaf01.sim.runningPort("swp3")).toEqual({ access: 4000, down: false });
  });

  it("puts the previous files back when the NOS cannot reload the new ones, and reports it", async () => {
    const leaf01 = leaves.get("leaf01")!;
    const before = await Promise.all([frr("leaf01"), readFile(join(root, "leaf01", "etc/network/interfaces"), "utf8")]);
    // metal-core retries soon after the failure: its next check waits until the restored files were read,
    // so that the retry cannot replace them first on a slow machine.
    const sim = leaf01.sim;
    const check = sim.check.bind(sim);
    let releaseRetry!: () => void;
    const restoredRead = new Promise<void>((r) => (releaseRetry = r));
    const reloadsBefore = sim.reloads;
    sim.check = async (kind, path) => {
      if (sim.reloads > reloadsBefore) await restoredRead;
      return check(kind, path);
    };
    try {
      sim.failNextReload("ifreload: error: swp4: cannot set mtu");
      await server.client(AdminSwitchService, server.adminToken).port({ id: "leaf01", nic: "swp3", state: SwitchPortState.DOWN });
      const failed = await eventually("the failed reload to be reported", async () => {
        const r = await switchRow("leaf01");
        return r.last_sync_error?.generation === r.version && r.last_sync_error.error.startsWith("reload failed") && r;
      });
      expect(failed.last_sync_error?.error).toBe("reload failed: ifreload: error: swp4: cannot set mtu; the previous config is back in place");
      // The port was not confirmed down: the toggle is still pending.
      expect(failed.nics.find((n) => n.name === "swp3")?.desired).toBe("down");
      expect(await Promise.all([frr("leaf01"), readFile(join(root, "leaf01", "etc/network/interfaces"), "utf8")])).toEqual(before);
    } finally {
      releaseRetry();
      sim.check = check;
    }
    // The retry reloads fine.
    await eventually("swp3 to be shut after the retry", async () => (await portModes("leaf01")).swp3 === "down" && leaf01.sim.runningPort("swp3")?.down);
    await synced("leaf01");
  });
});
