import { describe, expect, it } from "vitest";
import { type MachineFacts, machineIssues } from "../../../server/domain/machine-issues.js";
import { chooseCandidate, chooseRack, reservationsAllow } from "../../../server/domain/placement.js";
import { applyEvent, EventType as E, emptyContainer } from "../../../server/domain/provisioning.js";
import { type LeafSwitch, wireMachine } from "../../../server/domain/switch-wiring.js";

describe("placement", () => {
  const candidates = [
    { id: "a1", rack: "r1" },
    { id: "a2", rack: "r1" },
    { id: "b1", rack: "r2" },
    { id: "c1", rack: "r3" },
  ];

  it("prefers racks without machines of the project", () => {
    const placed = [
      { rack: "r1", tags: [] },
      { rack: "r2", tags: [] },
    ];
    for (let i = 0; i < 20; i++) expect(chooseCandidate(candidates, placed, [], () => i / 20)?.rack).toBe("r3");
  });

  it("lets placement tags win over plain spreading", () => {
    // r3 holds the tagged machine, r1 and r2 hold two untagged ones each.
    const placed = [
      { rack: "r1", tags: [] },
      { rack: "r1", tags: [] },
      { rack: "r2", tags: [] },
      { rack: "r2", tags: [] },
      { rack: "r3", tags: ["db"] },
    ];
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add(chooseCandidate(candidates, placed, ["db"], () => i / 20)!.rack);
    expect(seen).toEqual(new Set(["r1", "r2"]));
  });

  it("picks among all candidates of the preferred racks and answers undefined without any", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) seen.add(chooseCandidate(candidates, [], [], () => i / 40)!.id);
    expect(seen).toEqual(new Set(["a1", "a2", "b1", "c1"]));
    expect(chooseCandidate([], [], [])).toBeUndefined();
  });
});

describe("rack choice", () => {
  it("prefers racks without the project's machines and weighs racks by their waiting machines", () => {
    const waiting = [
      { rack: "r1", n: 3 },
      { rack: "r2", n: 1 },
      { rack: "r3", n: 0 },
    ];
    expect(chooseRack(waiting, [{ rack: "r1", tags: [] }], [], () => 0.99)).toBe("r2");
    const counts = new Map<string, number>();
    for (let i = 0; i < 100; i++) {
      const r = chooseRack(waiting, [], [], () => i / 100)!;
      counts.set(r, (counts.get(r) ?? 0) + 1);
    }
    expect(counts).toEqual(
      new Map([
        ["r1", 75],
        ["r2", 25],
      ]),
    );
    expect(chooseRack([{ rack: "r1", n: 0 }], [], [])).toBeUndefined();
  });
});

describe("size reservations", () => {
  const res = [
    { project: "p1", amount: 2 },
    { project: "p2", amount: 3 },
  ];
  it.each([
    ["own unused reservation", "p1", new Map([["p1", 1]]), 1, true],
    ["others' reservations keep the last machines", "p3", new Map(), 5, false],
    ["enough beyond others' reservations", "p3", new Map(), 6, true],
    [
      "others used theirs up",
      "p3",
      new Map([
        ["p1", 2],
        ["p2", 3],
      ]),
      1,
      true,
    ],
    ["own reservation used up", "p1", new Map([["p1", 2]]), 3, false],
  ] as const)("%s", (_n, project, used, available, expected) => {
    expect(reservationsAllow(res, used, project, available)).toBe(expected);
  });
});

describe("switch wiring", () => {
  const switches: LeafSwitch[] = [
    { id: "leaf01", name: "leaf01", rack: "r1", nics: [{ name: "swp1", identifier: "aa:00" }] },
    { id: "leaf02", name: "leaf02", rack: "r1", nics: [{ name: "swp1", identifier: "bb:00" }] },
    { id: "leaf03", name: "leaf03", rack: "r2", nics: [{ name: "swp1", identifier: "cc:00" }] },
  ];
  const nic = (name: string, hostname: string, port = "swp1") => ({ name, mac: `m-${name}`, neighbors: [{ hostname, port }] });

  it("wires a machine to two leaves of one rack", () => {
    const w = wireMachine([nic("eth0", "leaf01"), nic("eth1", "leaf02")], switches);
    expect(w).toEqual({
      ok: true,
      rack: "r1",
      connections: [
        { switchId: "leaf01", switchPort: "swp1", machineNic: "eth0" },
        { switchId: "leaf02", switchPort: "swp1", machineNic: "eth1" },
      ],
    });
  });

  it("names the neighbours it does not know, bounded and printable", () => {
    const nics = [nic("eth0", "leaf01"), nic("eth1", "leaf02", "tapb"), ...Array.from({ length: 6 }, (_, i) => nic(`eth${i + 2}`, `x\u0007${"y".repeat(100)}`))];
    const w = wireMachine(nics, switches);
    expect(w.ok).toBe(false);
    if (w.ok) return;
    expect(w.reason).toContain('name 1 known switch(es); not known: "eth1": "leaf02" port "tapb" (no such port), "eth2": "x?yyy');
    expect(w.reason).toContain("and 3 more");
    expect(w.reason).not.toContain("\u0007");
    expect(w.reason.length).toBeLessThan(600);
  });

  it.each([
    ["one switch", [nic("eth0", "leaf01")], "exactly two"],
    ["unknown neighbours", [nic("eth0", "leafXX"), nic("eth1", "leaf02")], "exactly two"],
    ["two racks", [nic("eth0", "leaf01"), nic("eth1", "leaf03")], "different racks"],
  ])("refuses %s", (_n, nics, reason) => {
    const w = wireMachine(nics, switches);
    expect(w.ok).toBe(false);
    if (!w.ok) expect(w.reason).toContain(reason);
  });
});

describe("machine issues", () => {
  const now = new Date("2026-01-01T12:00:00Z");
  const container = (...types: E[]) => types.reduce((c, type, i) => applyEvent(c, { type, message: "", time: new Date(now.getTime() - (types.length - i) * 60_000) }), emptyContainer());
  const base: MachineFacts = { partition: "p", allocated: false, events: container(E.PXE_BOOTING), bmc: { mac: "m", address: "10.0.0.1:623", lastUpdated: now }, bmcAddressShared: false };

  it.each<[string, Partial<MachineFacts>, string[]]>([
    ["a healthy machine", {}, []],
    ["no partition", { partition: "" }, ["no-partition"]],
    ["no events", { events: undefined }, ["no-event-container"]],
    ["dead", { events: { ...container(E.PXE_BOOTING), liveliness: "Dead" } }, ["liveliness-dead"]],
    ["crash loop", { events: container(E.PXE_BOOTING, E.CRASHED) }, ["crashloop", "last-event-error"]],
    ["crash loop, but waiting again", { events: { ...container(E.PXE_BOOTING, E.CRASHED), events: [{ type: E.WAITING, message: "", time: now }] } }, ["last-event-error"]],
    ["free but phoning home", { events: container(E.PXE_BOOTING, E.PREPARING, E.REGISTERING, E.INSTALLING, E.BOOTING_NEW_KERNEL, E.PHONED_HOME) }, ["failed-machine-reclaim"]],
    ["BMC silent", { bmc: { mac: "m", address: "a", lastUpdated: new Date(now.getTime() - 21 * 60_000) } }, ["bmc-info-outdated"]],
    ["BMC without data", { bmc: { mac: "", address: "", lastUpdated: undefined }, bmcAddressShared: true }, ["bmc-without-mac", "bmc-without-ip", "bmc-info-outdated", "bmc-no-distinct-ip"]],
  ])("%s", (_n, patch, expected) => {
    expect(machineIssues({ ...base, ...patch }, now)).toEqual(expected);
  });
});
