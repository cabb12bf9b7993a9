import { describe, expect, it } from "vitest";
import { type CapacityMachine, type CapacityReservation, computeCapacity, isFaulty } from "../../../server/domain/capacity.js";
import type { MachineFacts } from "../../../server/domain/machine-issues.js";
import { type EventContainer, EventType, type Liveliness } from "../../../server/domain/provisioning.js";

const now = new Date("2026-01-01T12:00:00Z");
const ago = (ms: number) => new Date(now.getTime() - ms);

const container = (newest: EventType | undefined, liveliness: Liveliness = "Alive", extra: Partial<EventContainer> = {}): EventContainer => ({
  liveliness,
  events: newest ? [{ type: newest, message: "", time: ago(1000) }] : [],
  lastEventTime: ago(1000),
  lastErrorEvent: undefined,
  crashLoop: false,
  failedMachineReclaim: false,
  ...extra,
});

let n = 0;
function machine(over: Partial<Omit<CapacityMachine, "facts">> & { events?: EventContainer | null; facts?: Partial<MachineFacts> } = {}): CapacityMachine {
  const { events, facts, ...rest } = over;
  const project = rest.project;
  return {
    id: `m${String(++n).padStart(3, "0")}`,
    partition: "p1",
    size: "s1",
    project: undefined,
    candidate: false,
    ...rest,
    facts: {
      partition: rest.partition ?? "p1",
      allocated: project !== undefined,
      events: events === null ? undefined : (events ?? container(EventType.WAITING)),
      bmc: undefined,
      bmcAddressShared: false,
      ...facts,
    },
  };
}
const waiting = () => machine({ candidate: true });
const allocated = (project: string) => machine({ project, events: container(EventType.PHONED_HOME) });
const reservation = (project: string, amount: number, partitions = ["p1"], size = "s1"): CapacityReservation => ({ project, amount, partitions, size });

const capacity = (machines: CapacityMachine[], reservations: CapacityReservation[] = [], project?: string, partitions = ["p1"]) => computeCapacity({ partitions, machines, reservations, project, now });
const one = (...args: Parameters<typeof capacity>) => capacity(...args)[0]!.sizes[0]!;

describe("faulty", () => {
  it("is any issue but a recent error event", () => {
    const base: MachineFacts = { partition: "p1", allocated: false, events: container(EventType.WAITING), bmc: undefined, bmcAddressShared: false };
    expect(isFaulty(base, now)).toBe(false);
    expect(isFaulty({ ...base, events: container(EventType.WAITING, "Alive", { lastErrorEvent: { type: EventType.CRASHED, message: "", time: ago(1000) } }) }, now)).toBe(false);
    expect(isFaulty({ ...base, events: container(EventType.WAITING, "Dead") }, now)).toBe(true);
    expect(isFaulty({ ...base, events: undefined }, now)).toBe(true);
    expect(isFaulty({ ...base, events: container(EventType.PHONED_HOME) }, now)).toBe(true); // free but running: failed reclaim
    expect(isFaulty({ ...base, bmc: { mac: "", address: "10.1.1.1", lastUpdated: now } }, now)).toBe(true);
  });
});

describe("capacity", () => {
  it("splits the machines into allocated / allocatable / unavailable and waiting / phoned home / other", () => {
    const ms = [
      waiting(),
      waiting(),
      allocated("pa"),
      machine({ events: container(EventType.WAITING) }), // waiting event, but no open Wait stream or tainted: not a candidate
      machine({ events: container(EventType.INSTALLING), project: "pb" }),
      machine({ events: container(EventType.PXE_BOOTING, "Dead") }),
    ];
    const cap = one(ms);
    expect(cap).toMatchObject({ size: "s1", total: 6, allocated: 2, allocatable: 2, free: 2, unavailable: 2, waiting: 3, phonedHome: 1, other: 2, faulty: 1 });
    expect(cap.allocated + cap.allocatable + cap.unavailable).toBe(cap.total);
    expect(cap.waiting + cap.phonedHome + cap.other).toBe(cap.total);
    expect(cap.otherMachines).toEqual([ms[4]!.id, ms[5]!.id].sort());
    expect(cap.faultyMachines).toEqual([ms[5]!.id]);
  });

  it("counts a machine that never sent an event as faulty and other", () => {
    const m = machine({ events: null });
    expect(one([m])).toMatchObject({ total: 1, faulty: 1, faultyMachines: [m.id], other: 1, otherMachines: [m.id], unavailable: 1 });
  });

  it("takes the unused reservations of other projects from free, floored at zero", () => {
    const ms = [waiting(), waiting(), waiting(), allocated("pb")];
    const reserved = [reservation("pb", 2), reservation("pc", 1)];
    // pb uses one of its two; pc none: two machines held back for them.
    expect(one(ms, reserved)).toMatchObject({ allocatable: 3, free: 1, reservations: 3, usedReservations: 1, remainingReservations: 2 });
    // The asking project's own reservation is its to use.
    expect(one(ms, reserved, "pb")).toMatchObject({ allocatable: 3, free: 2, reservations: 3, usedReservations: 1 });
    expect(one(ms, reserved, "pc")).toMatchObject({ free: 2 });
    expect(one(ms, [reservation("pc", 10)])).toMatchObject({ free: 0, remainingReservations: 10 });
  });

  it("counts reservations of one project together, so one machine is not used twice", () => {
    const ms = [waiting(), waiting(), allocated("pb")];
    expect(one(ms, [reservation("pb", 1), reservation("pb", 1)])).toMatchObject({ reservations: 2, usedReservations: 1, remainingReservations: 1, free: 1 });
  });

  it("uses more machines than reserved only up to the reservation", () => {
    expect(one([waiting(), allocated("pb"), allocated("pb"), allocated("pb")], [reservation("pb", 2)])).toMatchObject({ usedReservations: 2, remainingReservations: 0, free: 1 });
  });

  it("applies reservations only to their size and partitions", () => {
    const ms = [waiting(), machine({ partition: "p2", candidate: true }), machine({ size: "s2", candidate: true })];
    const result = capacity(ms, [reservation("pc", 1, ["p2"]), reservation("pc", 5, ["p1"], "s3")], undefined, ["p1", "p2"]);
    expect(result.map((p) => [p.partition, p.sizes.map((s) => [s.size, s.free, s.reservations])])).toEqual([
      [
        "p1",
        [
          ["s1", 1, 0],
          ["s2", 1, 0],
          ["s3", 0, 5],
        ],
      ],
      ["p2", [["s1", 0, 1]]],
    ]);
  });

  it("reports every asked-for partition, empty ones too, and nothing of the others", () => {
    expect(capacity([machine({ partition: "p9" })], [], undefined, ["p2", "p1"])).toEqual([
      { partition: "p1", sizes: [] },
      { partition: "p2", sizes: [] },
    ]);
  });

  it("groups machines that match no size under unknown, which cannot be reserved", () => {
    const m = machine({ size: "unknown", events: container(EventType.WAITING) });
    expect(capacity([m], [reservation("pa", 3, ["p1"], "unknown")])[0]!.sizes).toMatchObject([{ size: "unknown", total: 1, reservations: 0 }]);
  });
});
