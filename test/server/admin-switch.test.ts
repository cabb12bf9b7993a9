import { randomUUID } from "node:crypto";
import { type Client, Code } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { SwitchService as AdminSwitchService, type Switch, SwitchMode, SwitchPortState } from "../../gen/metal/admin/v1/switch_pb.js";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { AdminRole } from "../../gen/metal/api/v1/common_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { SwitchService } from "../../gen/metal/infra/v1/switch_pb.js";
import { expectCode } from "../helpers/expect.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let admin: Client<typeof AdminSwitchService>;
let viewer: Client<typeof AdminSwitchService>;
let infra: Client<typeof SwitchService>;
let boot: Client<typeof BootService>;
const GiB = 2n ** 30n;

const cumulus = (id: string, rack: string, ports = ["swp1", "swp2", "swp3", "swp4"]) => ({
  partition: "p1",
  id,
  rack,
  osVendor: "Cumulus",
  osVersion: "5.9",
  managementIp: "10.255.0.1",
  nics: ports.map((name) => ({ name, identifier: `${id}-${name}` })),
});

const sonic = (id: string, rack: string, lanes = [0, 4, 8, 12]) => ({
  ...cumulus(id, rack),
  osVendor: "SONiC",
  osVersion: "202311",
  nics: lanes.map((l) => ({ name: `Ethernet${l}`, identifier: `${id}-Ethernet${l}` })),
});

/** Registers a machine whose eth0 sees the first leaf and eth1 the second, on the given ports. */
async function cableMachine(leaves: [string, string], ports: [string, string]): Promise<string> {
  const id = randomUUID();
  await boot.register({
    partition: "p1",
    machineId: id,
    hardware: {
      memory: 16n * GiB,
      cpus: [{ model: "Xeon", cores: 4, threads: 8 }],
      disks: [{ name: "/dev/sda", size: 240_000_000_000n }],
      nics: leaves.map((hostname, i) => ({ name: `eth${i}`, mac: `0c:c4:7a:00:00:0${i}`, neighbors: [{ hostname, port: ports[i]! }] })),
    },
  });
  return id;
}

const setVrf = (machineId: string, vrf: string) => server.app.db.execute(sql`update machine_connections set vrf = ${vrf} where machine_id = ${machineId}`);

/** Rows of a raw query (the pg driver's result shape). */
async function query<T>(q: ReturnType<typeof sql>): Promise<T[]> {
  return ((await server.app.db.execute(q)) as unknown as { rows: T[] }).rows;
}

const nic = (sw: Switch | undefined, name: string) => sw?.nics.find((n) => n.name === name);
const cabled = (sw: Switch | undefined) => (sw?.nics ?? []).filter((n) => n.machineId !== "").map((n) => ({ name: n.name, machineId: n.machineId, machineNic: n.machineNic, vrf: n.vrf }));
const get = async (id: string) => (await admin.get({ id })).switch!;

let m1: string;
let m2: string;

beforeAll(async () => {
  server = await startTestServer();
  await server.client(AdminPartitionService, server.adminToken).create({ id: "p1" });
  const tokens = server.client(AdminTokenService, server.adminToken);
  const infraToken = (await tokens.create({ subject: "p1-agents", roles: { infraPartition: "p1" } })).secret;
  const viewerToken = (await tokens.create({ subject: "olga", roles: { adminRole: AdminRole.VIEWER } })).secret;
  admin = server.client(AdminSwitchService, server.adminToken);
  viewer = server.client(AdminSwitchService, viewerToken);
  infra = server.client(SwitchService, infraToken);
  boot = server.client(BootService, infraToken);
  for (const [id, rack] of [
    ["leaf01", "r1"],
    ["leaf02", "r1"],
    ["leaf11", "r2"],
    ["leaf12", "r2"],
    ["leaf21", "r3"],
    ["leaf22", "r3"],
    ["leaf31", "r4"],
    ["leaf32", "r4"],
  ] as const) {
    await infra.register(cumulus(id, rack));
  }
  await infra.register(sonic("leaf13", "r2"));
  await infra.register(sonic("leaf14", "r2", [0]));
  m1 = await cableMachine(["leaf01", "leaf02"], ["swp1", "swp1"]);
  m2 = await cableMachine(["leaf01", "leaf02"], ["swp2", "leaf02-swp2"]);
  await setVrf(m1, "vrf42");
});

describe("reading switches", () => {
  it("shows every port with the machine cabled to it and its VRF", async () => {
    const sw = await get("leaf01");
    expect(sw).toMatchObject({ id: "leaf01", partition: "p1", rack: "r1", mode: SwitchMode.OPERATIONAL, os: { vendor: "Cumulus", version: "5.9" }, managementIp: "10.255.0.1" });
    expect(sw.nics.map((n) => n.name)).toEqual(["swp1", "swp2", "swp3", "swp4"]);
    expect(cabled(sw)).toEqual([
      { name: "swp1", machineId: m1, machineNic: "eth0", vrf: "vrf42" },
      { name: "swp2", machineId: m2, machineNic: "eth0", vrf: "" },
    ]);
    expect(nic(sw, "swp3")).toMatchObject({ identifier: "leaf01-swp3", machineId: "", state: SwitchPortState.UNKNOWN, desiredState: SwitchPortState.UNSPECIFIED });
    expect(cabled(await get("leaf02"))).toEqual([
      { name: "swp1", machineId: m1, machineNic: "eth1", vrf: "vrf42" },
      { name: "swp2", machineId: m2, machineNic: "eth1", vrf: "" },
    ]);
    expect(sw.lastSync).toBeUndefined();
  });

  it("lists by partition and rack, page by page, and lets a viewer read", async () => {
    const r2 = await viewer.list({ partition: "p1", rack: "r2" });
    expect(r2.switches.map((s) => s.id)).toEqual(["leaf11", "leaf12", "leaf13", "leaf14"]);
    expect((await admin.list({ partition: "nowhere" })).switches).toEqual([]);
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await admin.list({ paging: { limit: 3, pageToken } });
      expect(page.switches.length).toBeLessThanOrEqual(3);
      seen.push(...page.switches.map((s) => s.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(seen).toEqual([...seen].sort());
    expect(seen).toEqual(expect.arrayContaining(["leaf01", "leaf13", "leaf32"]));
    expect((await viewer.get({ id: "leaf01" })).switch?.id).toBe("leaf01");
  });

  it("refuses bad input", async () => {
    await expectCode(admin.get({ id: "nope" }), Code.NotFound, 'switch "nope" not found');
    await expectCode(admin.get({ id: "Leaf_01" }), Code.InvalidArgument, "id:");
    await expectCode(admin.list({ rack: "R 1" }), Code.InvalidArgument, "rack:");
    await expectCode(admin.list({ paging: { pageToken: "garbage" } }), Code.InvalidArgument, "paging.page_token");
  });
});

describe("updating switches", () => {
  it("changes description and console command with optimistic locking", async () => {
    const before = await get("leaf01");
    const { switch: sw } = await admin.update({ id: "leaf01", version: before.meta!.version, description: "row 3, top", consoleCommand: "ssh console@leaf01" });
    expect(sw).toMatchObject({ description: "row 3, top", consoleCommand: "ssh console@leaf01", mode: SwitchMode.OPERATIONAL });
    expect(sw!.meta!.version).toBe(before.meta!.version + 1n);
    expect(cabled(sw)).toEqual(cabled(before));
    await expectCode(admin.update({ id: "leaf01", version: before.meta!.version, description: "stale" }), Code.Aborted, "changed by someone else");
    expect((await get("leaf01")).description).toBe("row 3, top");
  });

  it("refuses bad input and viewers, changing nothing", async () => {
    const before = await get("leaf02");
    const version = before.meta!.version;
    await expectCode(admin.update({ id: "leaf02", version: 0n, description: "x" }), Code.InvalidArgument, "version: is required");
    await expectCode(admin.update({ id: "leaf02", version, mode: SwitchMode.UNSPECIFIED }), Code.InvalidArgument, "mode: must be set");
    await expectCode(admin.update({ id: "leaf02", version, description: "a\u0001b" }), Code.InvalidArgument, "description: must not contain control characters");
    await expectCode(admin.update({ id: "leaf99", version: 1n, description: "x" }), Code.NotFound);
    await expectCode(viewer.update({ id: "leaf02", version, description: "viewer was here" }), Code.PermissionDenied);
    await expectCode(viewer.port({ id: "leaf02", nic: "swp1", state: SwitchPortState.DOWN }), Code.PermissionDenied);
    await expectCode(viewer.delete({ id: "leaf02", force: true }), Code.PermissionDenied);
    await expectCode(viewer.migrate({ oldSwitch: "leaf02", newSwitch: "leaf13" }), Code.PermissionDenied);
    expect(await get("leaf02")).toEqual(before);
  });

  it("allows replace mode only beside exactly one operational switch", async () => {
    await expectCode(admin.update({ id: "leaf11", version: (await get("leaf11")).meta!.version, mode: SwitchMode.REPLACE }), Code.FailedPrecondition, "exactly one other switch");
    expect((await get("leaf11")).mode).toBe(SwitchMode.OPERATIONAL);
  });
});

describe("port toggles", () => {
  it("stores the desired state, shown until metal-core confirms it, and survives re-registration", async () => {
    const { switch: sw } = await admin.port({ id: "leaf01", nic: "SWP1", state: SwitchPortState.DOWN });
    expect(nic(sw, "swp1")).toMatchObject({ state: SwitchPortState.DOWN, desiredState: SwitchPortState.DOWN, actualState: SwitchPortState.UNKNOWN, machineId: m1 });
    expect(nic(sw, "swp2")).toMatchObject({ state: SwitchPortState.UNKNOWN, desiredState: SwitchPortState.UNSPECIFIED });
    expect((await infra.register(cumulus("leaf01", "r1"))).created).toBe(false);
    const after = await get("leaf01");
    expect(nic(after, "swp1")?.desiredState).toBe(SwitchPortState.DOWN);
    expect(cabled(after)).toEqual(cabled(sw));
    const up = await admin.port({ id: "leaf01", nic: "swp1", state: SwitchPortState.UP });
    expect(nic(up.switch, "swp1")?.state).toBe(SwitchPortState.UP);
  });

  it("refuses unknown ports, ports without a machine and bad states, changing nothing", async () => {
    const before = await get("leaf02");
    await expectCode(admin.port({ id: "leaf02", nic: "swp9", state: SwitchPortState.DOWN }), Code.NotFound, "swp9");
    await expectCode(admin.port({ id: "leaf99", nic: "swp1", state: SwitchPortState.DOWN }), Code.NotFound, "leaf99");
    await expectCode(admin.port({ id: "leaf02", nic: "swp3", state: SwitchPortState.DOWN }), Code.FailedPrecondition, "no machine is connected to port swp3");
    await expectCode(admin.port({ id: "leaf02", nic: "swp1", state: SwitchPortState.UNKNOWN }), Code.InvalidArgument, "state: must be UP or DOWN");
    await expectCode(admin.port({ id: "leaf02", nic: "", state: SwitchPortState.UP }), Code.InvalidArgument, "nic: is required");
    expect(await get("leaf02")).toEqual(before);
  });
});

describe("registration of a known switch", () => {
  it("refuses to drop a port a machine is cabled to", async () => {
    const before = await get("leaf02");
    await expectCode(infra.register(cumulus("leaf02", "r1", ["swp1", "swp3"])), Code.FailedPrecondition, "machines connected on swp2");
    await expectCode(infra.register(cumulus("leaf02", "r9")), Code.FailedPrecondition, "cannot move to rack");
    expect(await get("leaf02")).toEqual(before);
  });

  it("takes a port more on a cabled switch, keeping its cabling and bumping its generation", async () => {
    const before = await get("leaf02");
    await infra.register(cumulus("leaf02", "r1", ["swp1", "swp2", "swp3", "swp4", "swp5"]));
    const after = await get("leaf02");
    expect(after.nics.map((n) => n.name)).toEqual(["swp1", "swp2", "swp3", "swp4", "swp5"]);
    expect(cabled(after)).toEqual(cabled(before));
    expect(after.meta!.version).toBeGreaterThan(before.meta!.version);
    // The cabled port still cannot go (this registration reads the cabling again, under the lock).
    await expectCode(infra.register(cumulus("leaf02", "r1", ["swp1", "swp3", "swp4", "swp5"])), Code.FailedPrecondition, "machines connected on swp2");
  });
});

describe("migration", () => {
  let a: string;
  let b: string;

  beforeAll(async () => {
    a = await cableMachine(["leaf11", "leaf12"], ["swp1", "swp1"]);
    b = await cableMachine(["leaf11", "leaf12"], ["leaf11-swp2", "swp2"]);
    await setVrf(a, "vrf7");
    await setVrf(b, "default");
  });

  it("refuses what cannot work and changes nothing", async () => {
    const before = await Promise.all(["leaf11", "leaf12", "leaf13", "leaf14"].map(get));
    await expectCode(admin.migrate({ oldSwitch: "leaf11", newSwitch: "leaf14" }), Code.FailedPrecondition, "has no port for the machines on swp2");
    await expectCode(admin.migrate({ oldSwitch: "leaf11", newSwitch: "leaf12" }), Code.FailedPrecondition, "already has machines connected on swp1, swp2");
    await expectCode(admin.migrate({ oldSwitch: "leaf11", newSwitch: "leaf32" }), Code.FailedPrecondition, "different racks");
    await expectCode(admin.migrate({ oldSwitch: "leaf11", newSwitch: "leaf99" }), Code.NotFound, "leaf99");
    await expectCode(admin.migrate({ oldSwitch: "leaf11", newSwitch: "leaf11" }), Code.InvalidArgument, "new_switch: must differ");
    await expectCode(admin.migrate({ oldSwitch: "", newSwitch: "leaf13" }), Code.InvalidArgument, "old_switch: is required");
    expect(await Promise.all(["leaf11", "leaf12", "leaf13", "leaf14"].map(get))).toEqual(before);
  });

  it("moves connections and port VRFs to a switch of the other OS, translating port names", async () => {
    await admin.port({ id: "leaf11", nic: "swp2", state: SwitchPortState.DOWN });
    const { switch: moved } = await admin.migrate({ oldSwitch: "leaf11", newSwitch: "leaf13" });
    const expected = [
      { name: "Ethernet0", machineId: a, machineNic: "eth0", vrf: "vrf7" },
      { name: "Ethernet4", machineId: b, machineNic: "eth0", vrf: "default" },
    ];
    expect(cabled(moved)).toEqual(expected);
    expect(nic(moved, "Ethernet4")?.desiredState).toBe(SwitchPortState.DOWN);
    expect(cabled(await get("leaf13"))).toEqual(expected);
    const old = await get("leaf11");
    expect(cabled(old)).toEqual([]);
    expect(nic(old, "swp2")?.desiredState).toBe(SwitchPortState.UNSPECIFIED);
    // The twin keeps its cabling.
    expect(cabled(await get("leaf12")).map((n) => n.machineId)).toEqual([a, b]);
    // The machines' stored LLDP neighbours follow, so the inventory agrees with the cabling.
    const [hw] = await query<{ hardware: { nics: { neighbors: unknown[] }[] } }>(sql`select hardware from machines where id = ${a}`);
    const neighbours = hw!.hardware.nics.flatMap((n) => n.neighbors);
    expect(neighbours).toEqual([
      { hostname: "leaf13", port: "Ethernet0" },
      { hostname: "leaf12", port: "swp1" },
    ]);
    // And back again to a Cumulus switch.
    const back = await admin.migrate({ oldSwitch: "leaf13", newSwitch: "leaf11" });
    expect(cabled(back.switch)).toEqual([
      { name: "swp1", machineId: a, machineNic: "eth0", vrf: "vrf7" },
      { name: "swp2", machineId: b, machineNic: "eth0", vrf: "default" },
    ]);
  });
});

describe("replacing broken hardware", () => {
  let a: string;
  let b: string;

  beforeAll(async () => {
    a = await cableMachine(["leaf21", "leaf22"], ["swp1", "swp1"]);
    b = await cableMachine(["leaf21", "leaf22"], ["swp3", "swp3"]);
    await setVrf(a, "vrf9");
  });

  it("copies the twin's cabling onto the new hardware, translated, then puts it in service", async () => {
    const v = (await get("leaf21")).meta!.version;
    const { switch: marked } = await admin.update({ id: "leaf21", version: v, mode: SwitchMode.REPLACE });
    expect(marked?.mode).toBe(SwitchMode.REPLACE);
    // The twin is the only source of the cabling: it cannot be in replace mode too.
    await expectCode(admin.update({ id: "leaf22", version: (await get("leaf22")).meta!.version, mode: SwitchMode.REPLACE }), Code.FailedPrecondition, "it has 0");
    // Hardware without a port the twin has a machine on changes nothing.
    const before = await get("leaf21");
    await expectCode(infra.register(sonic("leaf21", "r3", [0, 4])), Code.FailedPrecondition, "has no port for the machines on swp3");
    await expectCode(infra.register(sonic("leaf21", "r5")), Code.FailedPrecondition, 'instead of "r3"');
    expect(await get("leaf21")).toEqual(before);
    // Meanwhile the broken switch's old connections are simply gone: the twin is authoritative.
    await server.app.db.execute(sql`delete from machine_connections where switch_id = 'leaf21' and machine_id = ${b}`);

    expect((await infra.register(sonic("leaf21", "r3"))).created).toBe(false);
    const replaced = await get("leaf21");
    expect(replaced).toMatchObject({ mode: SwitchMode.OPERATIONAL, os: { vendor: "SONiC", version: "202311" } });
    expect(cabled(replaced)).toEqual([
      { name: "Ethernet0", machineId: a, machineNic: "eth0", vrf: "vrf9" },
      // No old connection told the NIC: the machine's LLDP neighbours did.
      { name: "Ethernet8", machineId: b, machineNic: "eth0", vrf: "" },
    ]);
    expect(cabled(await get("leaf22")).map((n) => [n.name, n.machineId])).toEqual([
      ["swp1", a],
      ["swp3", b],
    ]);

    // From now on registrations are the normal, idempotent kind.
    expect((await infra.register(sonic("leaf21", "r3"))).created).toBe(false);
    expect(cabled(await get("leaf21"))).toEqual(cabled(replaced));
  });

  it("lets only one of two switches of a rack go into replace mode, however close the requests", async () => {
    for (let round = 0; round < 5; round++) {
      const [x, y] = [`leaf6${round}a`, `leaf6${round}b`];
      await infra.register(cumulus(x, `r6${round}`));
      await infra.register(cumulus(y, `r6${round}`));
      const results = await Promise.allSettled([x, y].map(async (id) => admin.update({ id, version: (await get(id)).meta!.version, mode: SwitchMode.REPLACE })));
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const modes = await Promise.all([x, y].map(async (id) => (await get(id)).mode));
      expect(modes.filter((m) => m === SwitchMode.REPLACE)).toHaveLength(1);
    }
  });

  it("needs a twin to copy from", async () => {
    await infra.register(cumulus("leaf41", "r6"));
    await infra.register(cumulus("leaf42", "r6"));
    await admin.update({ id: "leaf41", version: (await get("leaf41")).meta!.version, mode: SwitchMode.REPLACE });
    await admin.delete({ id: "leaf42" });
    await expectCode(infra.register(sonic("leaf41", "r6")), Code.FailedPrecondition, 'rack "r6" has 0 other switches in operational mode');
    expect(await get("leaf41")).toMatchObject({ mode: SwitchMode.REPLACE, os: { vendor: "Cumulus" } });
  });
});

describe("deleting switches", () => {
  let m: string;

  beforeAll(async () => {
    m = await cableMachine(["leaf31", "leaf32"], ["swp4", "swp4"]);
  });

  it("is refused while machines are connected, unless forced, which removes the connections", async () => {
    await expectCode(admin.delete({ id: "leaf31" }), Code.FailedPrecondition, "still has machines connected on swp4");
    expect(cabled(await get("leaf31"))).toHaveLength(1);
    await expectCode(admin.delete({ id: "leaf99" }), Code.NotFound);
    await expectCode(admin.delete({ id: "LEAF31" }), Code.InvalidArgument, "id:");
    const { switch: gone } = await admin.delete({ id: "leaf31", force: true });
    expect(cabled(gone)).toEqual([{ name: "swp4", machineId: m, machineNic: "eth0", vrf: "" }]);
    await expectCode(admin.get({ id: "leaf31" }), Code.NotFound);
    expect(await query(sql`select switch_id from machine_connections where machine_id = ${m}`)).toEqual([{ switch_id: "leaf32" }]);
  });

  it("deletes a switch without machines right away", async () => {
    await infra.register(cumulus("leaf51", "r7"));
    expect((await admin.delete({ id: "leaf51" })).switch?.id).toBe("leaf51");
    await expectCode(admin.get({ id: "leaf51" }), Code.NotFound);
  });
});
