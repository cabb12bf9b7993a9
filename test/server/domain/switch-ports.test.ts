import { describe, expect, it } from "vitest";
import {
  adoptFromTwin,
  comparePorts,
  moveConnections,
  osKind,
  type PortConnection,
  portLine,
  portMapper,
  portNameOfLine,
  resolvePort,
  rewriteNeighbours,
  translatePortName,
} from "../../../server/domain/switch-ports.js";

const conn = (port: string, machineId: string, machineNic = "eth0", vrf: string | null = null): PortConnection => ({ port, machineId, machineNic, vrf });

describe("port lanes", () => {
  it.each([
    ["swp1", 0],
    ["swp1s0", 0],
    ["swp1s3", 3],
    ["swp2", 4],
    ["swp2s1", 5],
    ["swp32s3", 127],
    ["Ethernet0", 0],
    ["Ethernet5", 5],
    ["Ethernet127", 127],
  ])("%s is lane %i", (name, line) => {
    expect(portLine(name)).toBe(line);
  });

  it.each(["swp0", "swp1s4", "swp01", "Ethernet", "Ethernet01", "ethernet4", "eth0", "swp1s", "", "Ethernet-1"])("%s is no lane", (name) => {
    expect(portLine(name)).toBeUndefined();
  });

  it("names lanes per OS; a first lane is unbroken on Cumulus unless told otherwise", () => {
    expect(portNameOfLine(5, "sonic")).toBe("Ethernet5");
    expect(portNameOfLine(5, "cumulus")).toBe("swp2s1");
    expect(portNameOfLine(4, "cumulus")).toBe("swp2");
    expect(portNameOfLine(4, "cumulus", true)).toBe("swp2s0");
    expect(portNameOfLine(4, "other")).toBeUndefined();
    expect(portNameOfLine(-1, "sonic")).toBeUndefined();
  });

  it("translates both ways and round-trips", () => {
    expect(translatePortName("swp3s2", "sonic")).toBe("Ethernet10");
    expect(translatePortName("swp3", "sonic")).toBe("Ethernet8");
    expect(translatePortName("Ethernet10", "cumulus")).toBe("swp3s2");
    expect(translatePortName("Ethernet8", "cumulus")).toBe("swp3");
    expect(translatePortName("Ethernet8", "cumulus", true)).toBe("swp3s0");
    expect(translatePortName("eth0", "sonic")).toBeUndefined();
    for (let line = 0; line < 128; line++) {
      const cumulus = portNameOfLine(line, "cumulus", true)!;
      expect(translatePortName(translatePortName(cumulus, "sonic")!, "cumulus", true)).toBe(cumulus);
    }
  });

  it("knows OS vendors case-insensitively", () => {
    expect(osKind("SONiC")).toBe("sonic");
    expect(osKind(" cumulus ")).toBe("cumulus");
    expect(osKind("")).toBe("other");
  });

  it("orders ports by lane", () => {
    expect(["swp10", "swp2", "swp1s1", "Ethernet3", "x"].sort(comparePorts)).toEqual(["swp1s1", "Ethernet3", "swp2", "swp10", "x"]);
  });
});

describe("port mapping between switches", () => {
  it("maps by name on the same OS (swp1 and swp1s0 are different ports there)", () => {
    const map = portMapper("Cumulus", "cumulus", ["swp1s0", "swp2"]);
    expect(map("swp1s0")).toBe("swp1s0");
    expect(map("swp1")).toBeUndefined();
    expect(map("swp2")).toBe("swp2");
  });

  it("maps by lane across OSes, using the ports the target has", () => {
    const toSonic = portMapper("Cumulus", "SONiC", ["Ethernet0", "Ethernet1", "Ethernet4"]);
    expect(toSonic("swp1s1")).toBe("Ethernet1");
    expect(toSonic("swp2")).toBe("Ethernet4");
    expect(toSonic("swp1")).toBe("Ethernet0");
    expect(toSonic("swp3")).toBeUndefined();
    const toCumulus = portMapper("SONiC", "Cumulus", ["swp1s0", "swp1s1", "swp2"]);
    expect(toCumulus("Ethernet0")).toBe("swp1s0");
    expect(toCumulus("Ethernet4")).toBe("swp2");
    expect(toCumulus("Ethernet8")).toBeUndefined();
  });

  it("moves all connections or none, keeping machine NIC and VRF", () => {
    const map = portMapper("Cumulus", "SONiC", ["Ethernet0", "Ethernet4"]);
    expect(moveConnections([conn("swp1", "m1", "eth0", "vrf7"), conn("swp2", "m2", "eth1", "default")], map)).toEqual({
      ok: true,
      connections: [conn("Ethernet0", "m1", "eth0", "vrf7"), conn("Ethernet4", "m2", "eth1", "default")],
    });
    const missing = moveConnections([conn("swp1", "m1"), conn("swp10", "m2"), conn("swp3", "m3")], map);
    expect(missing).toEqual({ ok: false, reason: "it has no port for the machines on swp3, swp10" });
    const clash = moveConnections([conn("swp1", "m1"), conn("swp1s0", "m2")], portMapper("Cumulus", "SONiC", ["Ethernet0"]));
    expect(clash.ok).toBe(false);
  });

  it("resolves ports given by identifier", () => {
    const nics = [{ name: "swp1", identifier: "aa:bb" }];
    expect(resolvePort(nics, "aa:bb")).toBe("swp1");
    expect(resolvePort(nics, "swp1")).toBe("swp1");
    expect(resolvePort(nics, "zz")).toBe("zz");
  });
});

describe("adopting the twin's cabling", () => {
  const twin = [conn("swp1", "m1", "eth0", "vrf7"), conn("swp2", "m2", "eth0", null)];

  it("takes ports and VRFs from the twin and the machine NIC from the replaced switch", () => {
    const adopted = adoptFromTwin({
      twinConnections: twin,
      fromTwin: portMapper("Cumulus", "SONiC", ["Ethernet0", "Ethernet4"]),
      previousConnections: [conn("swp1", "m1", "eth1", "vrf7"), conn("swp2", "m2", "eth3", null)],
      fromPrevious: portMapper("Cumulus", "SONiC", ["Ethernet0", "Ethernet4"]),
      lldpNic: () => "lldp",
    });
    expect(adopted).toEqual({ ok: true, connections: [conn("Ethernet0", "m1", "eth1", "vrf7"), conn("Ethernet4", "m2", "eth3", null)] });
  });

  it("falls back to LLDP, then to nothing, for the machine NIC", () => {
    const adopted = adoptFromTwin({
      twinConnections: twin,
      fromTwin: portMapper("", "", ["swp1", "swp2"]),
      previousConnections: [],
      fromPrevious: () => undefined,
      lldpNic: (m) => (m === "m1" ? "eth1" : undefined),
    });
    expect(adopted).toEqual({ ok: true, connections: [conn("swp1", "m1", "eth1", "vrf7"), conn("swp2", "m2", "", null)] });
  });

  it("refuses hardware that lacks a port the twin has a machine on", () => {
    const adopted = adoptFromTwin({ twinConnections: twin, fromTwin: portMapper("", "", ["swp1"]), previousConnections: [], fromPrevious: () => undefined, lldpNic: () => undefined });
    expect(adopted).toEqual({ ok: false, reason: "it has no port for the machines on swp2" });
  });
});

describe("neighbour entries", () => {
  const hw = {
    memory: 1,
    nics: [
      { name: "eth0", neighbors: [{ hostname: "leaf01", port: "swp1" }] },
      { name: "eth1", neighbors: [{ hostname: "leaf02", port: "swp1" }] },
    ],
  };

  it("point at the new switch and port", () => {
    const map = portMapper("Cumulus", "SONiC", ["Ethernet0"]);
    expect(rewriteNeighbours(hw, "leaf01", "leaf05", map)).toEqual({
      memory: 1,
      nics: [{ name: "eth0", neighbors: [{ hostname: "leaf05", port: "Ethernet0" }] }, hw.nics[1]],
    });
  });

  it("are left alone when nothing changes", () => {
    expect(rewriteNeighbours(hw, "leaf01", "leaf01", portMapper("", "", ["swp1"]))).toBeUndefined();
    expect(rewriteNeighbours(hw, "leaf09", "leaf05", () => "x")).toBeUndefined();
  });
});
