import { describe, expect, it } from "vitest";
import { type Prefix, parsePrefix } from "../../../server/domain/ip-math.js";
import { NetworkKind } from "../../../server/domain/network.js";
import { compact, computeSwitchConfig, confirmToggles, type SwitchConfigInput, vniOfVrf } from "../../../server/domain/switch-config.js";

const networks: SwitchConfigInput["networks"] = new Map([
  ["private-a", { kind: NetworkKind.CHILD, prefixes: ["10.0.1.0/24", "2001:db8:0:1::/64"] }],
  ["internet", { kind: NetworkKind.EXTERNAL, prefixes: ["185.1.2.0/24"] }],
  ["underlay", { kind: NetworkKind.UNDERLAY, prefixes: ["10.255.0.0/24"] }],
  ["private-b", { kind: NetworkKind.CHILD, prefixes: ["10.0.2.0/24"] }],
]);

const input = (over: Partial<SwitchConfigInput> = {}): SwitchConfigInput => ({
  switchId: "leaf01",
  generation: 7,
  nics: [{ name: "swp1" }, { name: "swp2" }, { name: "swp3" }, { name: "swp4" }],
  connections: [
    { port: "swp1", machineId: "m-tenant", vrf: "vrf42" },
    { port: "swp2", machineId: "m-free", vrf: null },
    { port: "swp3", machineId: "m-fw", vrf: "default" },
  ],
  allocations: new Map([
    [
      "m-tenant",
      {
        role: "machine" as const,
        networks: [
          { network: "private-a", ips: ["10.0.1.5", "2001:db8:0:1::5"], vrf: 42 },
          { network: "internet", ips: ["185.1.2.9"], vrf: 0 },
        ],
      },
    ],
    ["m-free", null],
    [
      "m-fw",
      {
        role: "firewall" as const,
        networks: [
          { network: "underlay", ips: ["10.255.0.7"], vrf: 0 },
          { network: "private-b", ips: ["10.0.2.1"], vrf: 43 },
          { network: "internet", ips: ["185.1.2.10"], vrf: 104009 },
        ],
      },
    ],
  ]),
  networks,
  ...over,
});

describe("switch config computation", () => {
  it("puts each port in the mode its port VRF says, with the generation of the switch", () => {
    const c = computeSwitchConfig(input());
    expect(c.generation).toBe(7);
    expect(c.ports.map((p) => [p.name, p.mode, p.vrf, p.vni, p.bgpUnnumbered, p.machineId])).toEqual([
      ["swp1", "tenant", "vrf42", 42, true, "m-tenant"],
      ["swp2", "pxe", "", 0, false, "m-free"],
      ["swp3", "firewall", "default", 0, true, "m-fw"],
      ["swp4", "pxe", "", 0, false, ""],
    ]);
  });

  it("filters a tenant port to the private prefixes plus the machine's other addresses as host routes", () => {
    const swp1 = computeSwitchConfig(input()).ports[0]!;
    // 10.0.1.5 is inside the private prefix and adds nothing; the public IP is a /32.
    expect(swp1.allowedPrefixes).toEqual(["10.0.1.0/24", "185.1.2.9/32", "2001:db8:0:1::/64"]);
    expect(swp1.allowedVnis).toEqual([]);
  });

  it("gives a firewall its VNIs and only its underlay addresses", () => {
    const swp3 = computeSwitchConfig(input()).ports[2]!;
    expect(swp3.allowedVnis).toEqual([43, 104009]);
    expect(swp3.allowedPrefixes).toEqual(["10.255.0.7/32"]);
  });

  it("keeps PXE ports of installing machines free of filters, even when allocated", () => {
    const c = computeSwitchConfig(input({ connections: [{ port: "swp1", machineId: "m-tenant", vrf: null }] }));
    expect(c.ports[0]).toMatchObject({ mode: "pxe", vrf: "", allowedPrefixes: [], bgpUnnumbered: false });
  });

  it("takes a pending toggle over the confirmed state, and the confirmed state once the toggle is done", () => {
    const nics = [
      { name: "swp1", desired: "down" as const, actual: "up" as const },
      { name: "swp2", actual: "down" as const },
      { name: "swp3", desired: "up" as const, actual: "down" as const },
      { name: "swp4", actual: "unknown" as const },
    ];
    expect(computeSwitchConfig(input({ nics })).ports.map((p) => p.adminUp)).toEqual([false, false, true, true]);
  });

  it("clears a toggle once metal-core reports it reached, without changing the computed config", () => {
    const nics = [
      { name: "swp1", desired: "down" as const, actual: "up" as const },
      { name: "swp2", desired: "up" as const, actual: "down" as const },
    ];
    const before = computeSwitchConfig(input({ nics }));
    const { nics: after, changed } = confirmToggles(
      nics,
      new Map([
        ["swp1", "down" as const],
        ["swp2", "down" as const],
      ]),
    );
    expect(changed).toBe(true);
    expect(after).toEqual([
      { name: "swp1", actual: "down" },
      { name: "swp2", desired: "up", actual: "down" },
    ]);
    expect(computeSwitchConfig(input({ nics: after })).ports).toEqual(before.ports);
  });

  it("reads VNIs from tenant VRF names only", () => {
    expect(vniOfVrf("vrf42")).toBe(42);
    expect(vniOfVrf("default")).toBeUndefined();
    expect(vniOfVrf("vrf")).toBeUndefined();
  });

  it("compacts prefixes: sorted, no duplicates, nothing inside another", () => {
    const p = (s: string) => parsePrefix(s, false) as Prefix;
    expect(compact([p("10.1.0.0/16"), p("10.0.0.0/8"), p("10.0.0.1/32"), p("192.168.0.1/32"), p("192.168.0.1/32"), p("2001:db8::/32"), p("2001:db8::1/128")])).toEqual([
      "10.0.0.0/8",
      "192.168.0.1/32",
      "2001:db8::/32",
    ]);
  });
});
