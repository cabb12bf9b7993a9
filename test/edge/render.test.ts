import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigApplier } from "../../edge/core/apply.js";
import { DEFAULT_SETTINGS, type DesiredConfig, type LocalSettings, type PortConfig } from "../../edge/core/config.js";
import { findVtysh, frrDryRun } from "../../edge/core/frr-check.js";
import { assignVlans, render, vlansFromInterfaces } from "../../edge/core/render.js";
import { checkFrr, checkInterfaces, validateConfig } from "../../edge/core/validate.js";
import { SimSwitch } from "../../edge/sim/switch.js";

const settings: LocalSettings = { hostname: "leaf01", ...DEFAULT_SETTINGS };
const port = (name: string, over: Partial<PortConfig> = {}): PortConfig => ({
  name,
  mode: "pxe",
  vrf: "",
  vni: 0,
  bgpUnnumbered: false,
  adminUp: true,
  machineId: "",
  allowedPrefixes: [],
  allowedVnis: [],
  ...over,
});
const tenant = (name: string, vni: number, machineId: string, prefixes: string[]) => port(name, { mode: "tenant", vrf: `vrf${vni}`, vni, bgpUnnumbered: true, machineId, allowedPrefixes: prefixes });

const config: DesiredConfig = {
  generation: 5,
  switchId: "leaf01",
  ports: [
    tenant("swp1", 42, "m1", ["10.0.1.0/24", "185.1.2.9/32", "2001:db8:0:1::/64"]),
    port("swp2", { machineId: "m2" }),
    port("swp3", { mode: "firewall", vrf: "default", bgpUnnumbered: true, machineId: "fw", allowedPrefixes: ["10.255.0.7/32"], allowedVnis: [42, 104009] }),
    tenant("swp4", 43, "m4", ["10.0.2.0/24"]),
    port("swp5", { adminUp: false, machineId: "m5" }),
    port("swp6"),
  ],
};

/** The indented lines of one `iface` block. */
function ifaceBlock(text: string, name: string): string[] {
  const lines = text.split("\n");
  const at = lines.indexOf(`iface ${name}`);
  if (at === -1) return [];
  const out: string[] = [];
  for (const l of lines.slice(at + 1)) {
    if (!l.startsWith("    ")) break;
    out.push(l.trim());
  }
  return out;
}

/** The lines of one `router bgp` instance. */
function bgpBlock(text: string, head: string): string[] {
  const lines = text.split("\n");
  const at = lines.indexOf(head);
  return at === -1 ? [] : lines.slice(at + 1, lines.indexOf("exit", at));
}

describe("rendering", () => {
  const r = render(config, settings);

  it("puts tenant ports into their VRF and nowhere else", () => {
    expect(ifaceBlock(r.interfaces, "swp1")).toEqual(["mtu 9000", "vrf vrf42", "# tenant VRF vrf42, machine m1"]);
    expect(ifaceBlock(r.interfaces, "swp4")).toContain("vrf vrf43");
    const bridge = ifaceBlock(r.interfaces, "bridge");
    expect(bridge[0]).toBe("bridge-ports swp2 swp6 vni104000 vni42 vni43");
    expect(bridge[1]).toBe("bridge-vids 4000 1001 1002");
    expect(ifaceBlock(r.interfaces, "vrf42")).toEqual(["mtu 9216", "vrf-table auto"]);
    expect(ifaceBlock(r.interfaces, "vni42")).toEqual(expect.arrayContaining(["vxlan-id 42", "bridge-access 1001", `vxlan-local-tunnelip ${settings.loopback}`]));
    expect(ifaceBlock(r.interfaces, "vlan1001")).toEqual(expect.arrayContaining(["vlan-id 1001", "vrf vrf42"]));
  });

  it("keeps machines that are free or installing in the PXE VLAN", () => {
    expect(ifaceBlock(r.interfaces, "swp2")).toEqual(["mtu 9000", "bridge-access 4000", "# PXE, machine m2"]);
    expect(ifaceBlock(r.interfaces, "vlan4000")).toEqual(["mtu 9000", `address ${settings.pxeCidr}`, "vlan-id 4000", "vlan-raw-device bridge"]);
  });

  it("shuts ports an operator turned off and leaves them out of everything else", () => {
    expect(ifaceBlock(r.interfaces, "swp5")).toEqual(["link-down yes", "# shut by an operator, machine m5"]);
    expect(r.frr).not.toMatch(/\bswp5\b/);
  });

  it("peers BGP unnumbered with each machine in its VRF, filtered by that machine's prefixes", () => {
    const vrf42 = bgpBlock(r.frr, `router bgp ${settings.asn} vrf vrf42`);
    expect(vrf42).toContain(" neighbor swp1 interface peer-group MACHINE");
    expect(vrf42).toContain("  neighbor swp1 route-map swp1-in in");
    expect(vrf42).toContain("  neighbor swp1 route-map swp1-in6 in");
    expect(vrf42.join("\n")).not.toMatch(/swp4/);
    expect(bgpBlock(r.frr, `router bgp ${settings.asn} vrf vrf43`)).toContain(" neighbor swp4 interface peer-group MACHINE");
    expect(r.frr).toContain("vrf vrf42\n vni 42\nexit-vrf");
    const lists = r.frr.split("\n").filter((l) => /prefix-list swp1-in/.test(l) && l.includes(" seq "));
    expect(lists).toEqual([
      "ip prefix-list swp1-in-pl seq 10 permit 10.0.1.0/24 le 32",
      "ip prefix-list swp1-in-pl seq 20 permit 185.1.2.9/32",
      "ipv6 prefix-list swp1-in6-pl seq 10 permit 2001:db8:0:1::/64 le 128",
    ]);
    expect(r.frr).toContain("ip prefix-list swp4-in-pl seq 10 permit 10.0.2.0/24 le 32");
    // swp4 announces no IPv6 at all.
    expect(r.frr).toContain("route-map swp4-in6 deny 10");
  });

  it("peers firewalls in the default VRF, their routes limited to their underlay IPs and VNIs", () => {
    const main = bgpBlock(r.frr, `router bgp ${settings.asn}`);
    expect(main).toContain(" neighbor swp3 interface peer-group FIREWALL");
    expect(main).toContain("  neighbor swp3 route-map fw-swp3-in in");
    expect(main).toContain("  neighbor swp3 route-map fw-swp3-vni out");
    expect(r.frr).toContain("ip prefix-list fw-swp3-in-pl seq 10 permit 10.255.0.7/32");
    expect(r.frr).toContain("route-map fw-swp3-vni permit 10\n match evpn vni 42\nexit\nroute-map fw-swp3-vni permit 20\n match evpn vni 104009");
    expect(ifaceBlock(r.interfaces, "swp3")).toEqual(["mtu 9216", "# firewall, default VRF, machine fw"]);
  });

  it("keeps the local VLAN of a VRF that stays, so adding a VRF does not move the others", () => {
    expect(vlansFromInterfaces(r.interfaces)).toEqual(
      new Map([
        [42, 1001],
        [43, 1002],
      ]),
    );
    expect(
      assignVlans(
        [41, 42, 43],
        new Map([
          [42, 1001],
          [43, 1002],
        ]),
      ),
    ).toEqual(
      new Map([
        [42, 1001],
        [43, 1002],
        [41, 1003],
      ]),
    );
    const fewer = render({ ...config, ports: config.ports.filter((p) => p.name !== "swp1") }, settings, r.vlans);
    expect(ifaceBlock(fewer.interfaces, "vni43")).toContain("bridge-access 1002");
  });

  it("passes its own structural checks", () => {
    expect(validateConfig(config, settings, r)).toEqual([]);
  });

  it("is accepted by FRR's own parser (when FRR is installed)", async (ctx) => {
    if (!(await findVtysh())) ctx.skip();
    const dir = await mkdtemp(join(tmpdir(), "frr-"));
    try {
      await writeFile(join(dir, "frr.conf"), r.frr);
      expect(await frrDryRun(join(dir, "frr.conf"))).toBe(true);
      await writeFile(join(dir, "bad.conf"), `${r.frr}\nrouter bgp ${settings.asn} vrf\n neighbor swp1 nonsense\n`);
      await expect(frrDryRun(join(dir, "bad.conf"))).rejects.toThrow(/FRR refuses the config/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("validation", () => {
  it("refuses a tenant VRF without a usable VNI, and a VRF whose VNI does not match its name", () => {
    const bad: DesiredConfig = { ...config, ports: [tenant("swp1", 0, "m1", []), port("swp2", { mode: "tenant", vrf: "vrf7", vni: 8, bgpUnnumbered: true })] };
    const problems = validateConfig(bad, settings, render(bad, settings));
    expect(problems).toContain("port swp1: VNI 0 is out of range (1-16777215)");
    expect(problems).toContain("port swp2: VRF vrf7 must carry VNI 7, not 8");
  });

  it("refuses a PXE VLAN inside the VRF VLAN range, broken prefixes and machines on uplinks", () => {
    const bad: DesiredConfig = { ...config, ports: [port("swp31", { machineId: "m" }), tenant("swp1", 42, "m1", ["10.0.0.0/33"])] };
    const s = { ...settings, pxeVlan: 1500 };
    const problems = validateConfig(bad, s, render(bad, s));
    expect(problems).toEqual(
      expect.arrayContaining([
        "PXE VLAN 1500 lies in the range of VRF VLANs (1001-2000)",
        'port swp1: allowed prefix "10.0.0.0/33" is not a CIDR prefix',
        "port swp31: is an uplink, but machine m is said to be on it",
      ]),
    );
  });

  it("finds dangling references in the rendered text", () => {
    expect(checkFrr("router bgp 1\n neighbor swp1 route-map nope in\nexit\n")).toEqual(["frr.conf: route-map nope is used but not defined"]);
    expect(checkFrr("router bgp 1 vrf vrf9\nexit\n")).toEqual(["frr.conf: BGP instance of VRF vrf9 without a VNI"]);
    expect(checkInterfaces("auto swp1\niface swp1\n    vrf vrf1\n\nauto bridge\niface bridge\n    bridge-ports swp1\n")).toEqual([
      "interfaces: swp1 is in VRF vrf1, which is not defined",
      "interfaces: swp1 is both a bridge port and in VRF vrf1",
    ]);
  });
});

describe("applying to a (simulated) switch", () => {
  const dirs: string[] = [];
  afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
  const setUp = async () => {
    const root = await mkdtemp(join(tmpdir(), "leaf-"));
    dirs.push(root);
    const sim = new SimSwitch({ id: "leaf01", root });
    const applier = new ConfigApplier(sim, settings);
    return { sim, applier, files: () => Promise.all([readFile(applier.path("frr"), "utf8"), readFile(applier.path("interfaces"), "utf8")]) };
  };

  it("swaps the files in, reloads, and does nothing for the same config again", async () => {
    const { sim, applier, files } = await setUp();
    expect(await applier.apply(config)).toMatchObject({ generation: 5, changed: true, error: "" });
    expect(sim.runningPort("swp1")).toEqual({ vrf: "vrf42", down: false });
    expect(sim.runningPort("swp5")?.down).toBe(true);
    const [frr] = await files();
    expect(frr).toContain("router bgp 4200000011 vrf vrf42");
    expect(await applier.apply({ ...config, generation: 6 })).toMatchObject({ generation: 6, changed: false, error: "" });
    expect(sim.reloads).toBe(1);
  });

  it("leaves the running files alone when the candidate fails validation", async () => {
    const { sim, applier, files } = await setUp();
    await applier.apply(config);
    const before = await files();
    const broken: DesiredConfig = { ...config, generation: 7, ports: [tenant("swp1", 0, "m1", [])] };
    const r = await applier.apply(broken);
    expect(r.error).toMatch(/^validation failed: port swp1: VNI 0/);
    sim.rejectNextCheck("line 3: % Unknown command");
    const r2 = await applier.apply({ ...config, generation: 8, ports: config.ports.filter((p) => p.name !== "swp4") });
    expect(r2.error).toBe("validation failed: line 3: % Unknown command");
    expect(await files()).toEqual(before);
    expect(sim.reloads).toBe(1);
  });

  it("puts the previous files back when the reload fails", async () => {
    const { sim, applier, files } = await setUp();
    await applier.apply(config);
    const before = await files();
    sim.failNextReload("ifreload: error: swp1: cannot enslave");
    const r = await applier.apply({ ...config, generation: 9, ports: [port("swp1", { machineId: "m1" })] });
    expect(r.error).toBe("reload failed: ifreload: error: swp1: cannot enslave; the previous config is back in place");
    expect(await files()).toEqual(before);
    // The rollback was reloaded: the switch runs the previous config again.
    expect(sim.runningPort("swp1")?.vrf).toBe("vrf42");
  });
});
