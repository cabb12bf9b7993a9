import { describe, expect, it } from "vitest";
import { applyEvent, EventType as E, type EventContainer, type EventType, emptyContainer, evaluateLiveliness, HISTORY_LIMIT, needsResurrection, stateOf } from "../../../server/domain/provisioning.js";

const t0 = new Date("2026-01-01T00:00:00Z");
const at = (minutes: number) => new Date(t0.getTime() + minutes * 60_000);

/** Applies events one minute apart (or at the given minute) and returns the container. */
function run(events: (EventType | [EventType, number])[], start: EventContainer = emptyContainer()): EventContainer {
  return events.reduce((c, e, i) => {
    const [type, minute] = Array.isArray(e) ? e : [e, i];
    return applyEvent(c, { type, message: type.toLowerCase(), time: at(minute) });
  }, start);
}

const happyPath: EventType[] = [E.PXE_BOOTING, E.PREPARING, E.REGISTERING, E.WAITING, E.INSTALLING, E.BOOTING_NEW_KERNEL, E.PHONED_HOME];

describe("provisioning state machine", () => {
  it("follows the happy path, storing each event once, newest first", () => {
    const c = run(happyPath);
    expect(stateOf(c)).toBe(E.PHONED_HOME);
    expect(c.events.map((e) => e.type)).toEqual([...happyPath].reverse());
    expect(c.liveliness).toBe("Alive");
    expect(c.crashLoop).toBe(false);
    expect(c.lastErrorEvent).toBeUndefined();
  });

  it.each<[string, (EventType | [EventType, number])[], { state: string; stored: number; crashLoop?: boolean; failedReclaim?: boolean; error?: string }]>([
    ["repeated PXE Booting is only a heartbeat", [E.PXE_BOOTING, E.PXE_BOOTING, E.PXE_BOOTING], { state: E.PXE_BOOTING, stored: 1 }],
    ["Alive is never stored", [E.PXE_BOOTING, E.ALIVE, E.PREPARING, E.ALIVE], { state: E.PREPARING, stored: 2 }],
    ["repeated Phoned Home is swallowed", [...happyPath, E.PHONED_HOME, E.PHONED_HOME], { state: E.PHONED_HOME, stored: 7 }],
    ["Crashed marks a crash loop and the error", [E.PXE_BOOTING, E.PREPARING, E.CRASHED], { state: "Crashing", stored: 3, crashLoop: true, error: E.CRASHED }],
    ["out-of-order PXE Booting is a crash loop", [E.PXE_BOOTING, E.PREPARING, E.REGISTERING, E.PXE_BOOTING], { state: E.PXE_BOOTING, stored: 4, crashLoop: true, error: E.PXE_BOOTING }],
    [
      "Phoned Home clears a crash loop",
      [E.CRASHED, E.PXE_BOOTING, E.PREPARING, E.REGISTERING, E.INSTALLING, E.BOOTING_NEW_KERNEL, E.PHONED_HOME],
      { state: E.PHONED_HOME, stored: 7, crashLoop: false, error: E.CRASHED },
    ],
    ["Planned Reboot and Machine Reclaim are accepted from anywhere", [E.INSTALLING, E.PLANNED_REBOOT, E.PLANNED_REBOOT, E.MACHINE_RECLAIM], { state: E.MACHINE_RECLAIM, stored: 4 }],
    ["buffered phone-home after PXE boot is ignored within 5 minutes", [E.PXE_BOOTING, E.PREPARING, [E.PHONED_HOME, 3]], { state: E.PREPARING, stored: 2 }],
    ["phone-home after 5 quiet minutes while waiting is stored", [E.PXE_BOOTING, E.PREPARING, E.REGISTERING, E.WAITING, [E.PHONED_HOME, 20]], { state: E.PHONED_HOME, stored: 5 }],
    ["phone-home right after reclaim is ignored", [...happyPath, E.MACHINE_RECLAIM, [E.PHONED_HOME, 9]], { state: E.MACHINE_RECLAIM, stored: 8, failedReclaim: false }],
    ["phone-home 5 minutes after reclaim means a failed reclaim", [...happyPath, E.MACHINE_RECLAIM, [E.PHONED_HOME, 20]], { state: E.MACHINE_RECLAIM, stored: 8, failedReclaim: true }],
    ["PXE Booting clears a failed reclaim", [...happyPath, E.MACHINE_RECLAIM, [E.PHONED_HOME, 20], [E.PXE_BOOTING, 21]], { state: E.PXE_BOOTING, stored: 9, failedReclaim: false }],
    ["Waiting before Registering is stored with a marker", [E.PXE_BOOTING, E.WAITING], { state: E.WAITING, stored: 2, error: E.WAITING }],
    ["unexpected Alive is not stored but noted", [...happyPath, E.ALIVE], { state: E.PHONED_HOME, stored: 7, error: E.ALIVE }],
    ["Installing directly after Registering (allocation by id) is fine", [E.PXE_BOOTING, E.PREPARING, E.REGISTERING, E.INSTALLING], { state: E.INSTALLING, stored: 4 }],
  ])("%s", (_name, events, expected) => {
    const c = run(events);
    expect(stateOf(c)).toBe(expected.state);
    expect(c.events).toHaveLength(expected.stored);
    if (expected.crashLoop !== undefined) expect(c.crashLoop).toBe(expected.crashLoop);
    if (expected.failedReclaim !== undefined) expect(c.failedMachineReclaim).toBe(expected.failedReclaim);
    if (expected.error) expect(c.lastErrorEvent?.type).toBe(expected.error);
    else expect(c.lastErrorEvent).toBeUndefined();
  });

  it("marks unexpected events in their message", () => {
    const c = run([...happyPath, E.REGISTERING]);
    expect(c.events[0]?.message).toBe("[unexpectedly received in state phoned home]: registering");
  });

  it("keeps the last event time of every accepted event, also of unstored ones", () => {
    const c = run([E.PXE_BOOTING, [E.ALIVE, 4]]);
    expect(c.lastEventTime).toEqual(at(4));
    expect(run([E.PXE_BOOTING, E.PREPARING, [E.PHONED_HOME, 3]]).lastEventTime).toEqual(at(1));
  });

  it("caps the history", () => {
    const events = Array.from({ length: HISTORY_LIMIT + 30 }, (): EventType => E.PLANNED_REBOOT);
    const c = run(events);
    expect(c.events).toHaveLength(HISTORY_LIMIT);
    expect(c.events[0]?.time).toEqual(at(HISTORY_LIMIT + 29));
  });
});

describe("liveliness and resurrection", () => {
  const c = run([E.PXE_BOOTING]);
  it.each([
    [false, 4, "Alive"],
    [false, 6, "Dead"],
    [true, 6, "Unknown"],
  ] as const)("allocated=%s, %s minutes silent: %s", (allocated, minutes, expected) => {
    expect(evaluateLiveliness(c, allocated, at(minutes))).toBe(expected);
  });

  it("reports Unknown without any event", () => {
    expect(evaluateLiveliness(emptyContainer(), false, at(0))).toBe("Unknown");
  });

  it("resurrects free machines dead for an hour or with a failed reclaim", () => {
    const dead = { ...c, liveliness: "Dead" as const };
    expect(needsResurrection(dead, false, at(30))).toBe(false);
    expect(needsResurrection(dead, false, at(61))).toBe(true);
    expect(needsResurrection(dead, true, at(61))).toBe(false);
    expect(needsResurrection({ ...c, failedMachineReclaim: true }, false, at(1))).toBe(false);
    expect(needsResurrection({ ...c, failedMachineReclaim: true }, false, at(6))).toBe(true);
    expect(needsResurrection(emptyContainer(), false, at(600))).toBe(false);
  });
});
