import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseBgpNeighbors, parseLldpctl } from "../../edge/core/linux-switch.js";
import { loadCoreConfig } from "../../edge/core/main.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { SwitchService as AdminSwitchService } from "../../gen/metal/admin/v1/switch_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { eventually } from "../helpers/eventually.js";
import { startTestServer } from "../helpers/test-server.js";

describe("metal-core on Linux: parsing what the NOS tools print", () => {
  it("reads BGP sessions from vtysh's neighbor JSON", () => {
    const json = JSON.stringify({
      default: {
        vrfId: 0,
        vrfName: "default",
        swp31: {
          hostname: "spine01",
          peerGroup: "FABRIC",
          bgpState: "Established",
          bgpTimerUpMsec: 60_000,
          addressFamilyInfo: { ipv4Unicast: { acceptedPrefixCounter: 12, sentPrefixCounter: 3 }, l2VpnEvpn: { acceptedPrefixCounter: 5, sentPrefixCounter: 1 } },
        },
      },
      vrf42: { vrfId: 7, vrfName: "vrf42", swp2: { peerGroup: "MACHINE", bgpState: "Active", addressFamilyInfo: {} } },
    });
    const now = Date.parse("2026-12-01T12:00:00Z");
    expect(parseBgpNeighbors(json, now)).toEqual([
      { port: "swp31", neighbor: "spine01", peerGroup: "FABRIC", vrf: "default", state: "Established", establishedSince: new Date(now - 60_000), sentPrefixes: 4, acceptedPrefixes: 17 },
      { port: "swp2", neighbor: "", peerGroup: "MACHINE", vrf: "vrf42", state: "Active", establishedSince: undefined, sentPrefixes: 0, acceptedPrefixes: 0 },
    ]);
    expect(parseBgpNeighbors("not json")).toEqual([]);
  });

  it("reads LLDP neighbours from lldpctl's JSON in both of its shapes", () => {
    const id = "2a92f14d-8c3b-4f7e-9a1e-0123456789ab";
    const list = { lldp: { interface: [{ swp1: { chassis: { [id]: { descr: "provisioned since 2026-12-01" } } } }, { swp2: { chassis: { other: { descr: { value: "metal-hammer waiting" } } } } }] } };
    const one = { lldp: { interface: { swp1: { chassis: { [id]: { descr: "provisioned since 2026-12-01" } } } } } };
    expect(parseLldpctl(JSON.stringify(list))).toEqual([
      { port: "swp1", sysName: id, sysDescription: "provisioned since 2026-12-01" },
      { port: "swp2", sysName: "other", sysDescription: "metal-hammer waiting" },
    ]);
    expect(parseLldpctl(JSON.stringify(one))).toEqual([{ port: "swp1", sysName: id, sysDescription: "provisioned since 2026-12-01" }]);
  });

  it("takes flags over the environment and refuses malformed settings", () => {
    const c = loadCoreConfig({ METAL_CORE_TOKEN: "t", METAL_CORE_PARTITION_ID: "p1", METAL_CORE_RACK_ID: "r9", METAL_CORE_PXE_VLAN_ID: "3999" }, ["--rack", "r1", "--spine-uplinks=swp49, swp50"]);
    expect(c).toMatchObject({ partition: "p1", rack: "r1", root: "/", settings: { pxeVlan: 3999, uplinks: ["swp49", "swp50"] }, timing: { heartbeatMs: 10_000 } });
    expect(() => loadCoreConfig({}, [])).toThrow("--token ($METAL_CORE_TOKEN) is required");
    expect(() => loadCoreConfig({ METAL_CORE_TOKEN: "t", METAL_CORE_PARTITION_ID: "p", METAL_CORE_RACK_ID: "r" }, ["--pxe-vlan-id", "5000"])).toThrow(/from 1 to 4094/);
    expect(() => loadCoreConfig({}, ["--nope", "x"])).toThrow('unknown flag "--nope"');
  });
});

describe("the metal-core binary", () => {
  const dirs: string[] = [];
  afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it("registers this host as a switch, renders its config under --root and reports the sync", async (ctx) => {
    const id = hostname().split(".")[0]!;
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(id)) ctx.skip();
    const server = await startTestServer();
    await server.client(AdminPartitions, server.adminToken).create({ id: "p1" });
    const token = (await server.client(AdminTokens, server.adminToken).create({ subject: "core", roles: { infraPartition: "p1" } })).secret;
    const root = await mkdtemp(join(tmpdir(), "metal-core-bin-"));
    dirs.push(root);
    const child = spawn(process.execPath, ["bin/metal-core.js", "--api-url", server.url, "--partition", "p1", "--rack", "r1", "--root", root, "--reload-command", "true", "--heartbeat-interval", "0.2"], {
      env: { ...process.env, METAL_CORE_TOKEN: token },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    try {
      const admin = server.client(AdminSwitchService, server.adminToken);
      const lastSync = await eventually("a sync report", async () => (await admin.get({ id })).switch?.lastSync).catch((err: Error) => {
        throw new Error(`${err.message}; metal-core said: ${stderr}`);
      });
      expect(lastSync.error).toBe("");
      expect(await readFile(join(root, "etc/frr/frr.conf"), "utf8")).toContain(`hostname ${id}`);
      expect(await readFile(join(root, "etc/network/interfaces"), "utf8")).toContain("iface vlan4000");
      expect(stderr).toContain('"msg":"synced"');
    } finally {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
  });
});
