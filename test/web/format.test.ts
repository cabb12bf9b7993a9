import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { machineColumns as cliColumns, machineStatus as cliStatus } from "../../cli/commands/machine.js";
import { MachineWatchChangeKind as Kind, MachineLiveliness as Live, type Machine, MachineSchema, MachineState as State, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { machineColumns, machineMarkers, machineStatus } from "../../web/format.js";
import { rowView, sameRow } from "../../web/row-view.js";
import { applyWatchMessage, emptyWatchState, sortedMachines, type WatchMessage } from "../../web/watch-state.js";

// Times well inside their unit (1m30s, 2h30m, ...), so the two sides never straddle a second boundary.
const ago = (ms: number) => timestampFromMs(Date.now() - ms);

function machines(): Machine[] {
  const event = (type: T, msAgo: number) => ({ type, message: "", time: ago(msAgo) });
  return [
    create(MachineSchema, { id: "m-waiting", partition: "p1", size: "s1", rack: "r1", waiting: true, state: State.AVAILABLE, events: { liveliness: Live.ALIVE, log: [event(T.WAITING, 90_500)] } }),
    create(MachineSchema, {
      id: "m-allocated",
      partition: "p1",
      size: "s1",
      rack: "r2",
      state: State.LOCKED,
      stateReason: "do not touch",
      allocation: { project: "pr", hostname: "web1", image: "debian-12.0.20250101", createdAt: ago(2.5 * 3600_000), networks: [{ network: "n", ips: ["10.0.0.1"] }] },
      events: { liveliness: Live.DEAD, crashLoop: true, failedMachineReclaim: true, lastErrorEvent: event(T.CRASHED, 600_000), log: [event(T.PHONED_HOME, 3 * 86400_000 + 3600_000)] },
    }),
    create(MachineSchema, { id: "m-tainted", state: State.TAINTED, events: { liveliness: Live.UNKNOWN, lastErrorEvent: event(T.CRASHED, 2 * 3600_000), log: [] } }),
    create(MachineSchema, { id: "m-bare" }),
  ];
}

describe("the console's machine table is metalctl's", () => {
  it("has the columns of `metalctl machine list` (not -o wide), in its order, with the same cell text", () => {
    const narrow = cliColumns.filter((c) => !c.wide);
    expect(machineColumns.map((c) => c.header)).toEqual(narrow.map((c) => c.header));
    for (const m of machines()) {
      const now = Date.now();
      expect(
        machineColumns.map((c) => c.value(m, now)),
        m.id,
      ).toEqual(narrow.map((c) => c.value(m)));
    }
  });

  it("shows the same status markers, each with its meaning", () => {
    const [waiting, allocated, tainted, bare] = machines();
    expect(machineStatus(allocated!)).toBe(cliStatus(allocated!));
    expect(machineStatus(allocated!)).toBe("🔒💀⭕🚑❗");
    // An error older than an hour is not shown, as in metalctl.
    expect(machineStatus(tainted!)).toBe("🚧❓");
    expect(machineStatus(tainted!)).toBe(cliStatus(tainted!));
    expect(machineStatus(waiting!)).toBe("");
    expect(machineStatus(bare!)).toBe(cliStatus(bare!));
    expect(machineMarkers(allocated!).map((x) => x.meaning)).toEqual(["locked", "dead", "provisioning crash loop", "failed reclaim", "error in the last hour"]);
  });
});

describe("the table's view of a machine Watch", () => {
  const m = (id: string, hostname = "") => create(MachineSchema, { id, allocation: hostname ? { hostname } : undefined });
  const msg = (message: WatchMessage) => message;

  it("shows the snapshot once complete, then applies changes and drops what is gone; a reset starts over", () => {
    const s = emptyWatchState();
    expect(applyWatchMessage(s, msg({ case: "snapshot", value: m("b") }))).toBe(false);
    expect(applyWatchMessage(s, msg({ case: "snapshot", value: m("a") }))).toBe(false);
    expect(s.live).toBe(false);
    expect(applyWatchMessage(s, msg({ case: "snapshotDone", value: { $typeName: "metal.api.v1.MachineWatchSnapshotDone", revision: 7n } }))).toBe(true);
    expect(s.live).toBe(true);
    expect(s.resumeAfter).toBe(7n);
    expect(sortedMachines(s).map((x) => x.id)).toEqual(["a", "b"]);
    const change = (kind: Kind, id: string, revision: bigint, machine?: Machine, lastInRevision = true) =>
      msg({ case: "change", value: { $typeName: "metal.api.v1.MachineWatchChange", kind, id, revision, machine, lastInRevision } });
    expect(applyWatchMessage(s, change(Kind.ALLOCATED, "a", 8n, m("a", "web1"), false))).toBe(true);
    expect(s.resumeAfter).toBe(7n);
    expect(applyWatchMessage(s, change(Kind.GONE, "b", 8n))).toBe(true);
    expect(s.resumeAfter).toBe(8n);
    expect(sortedMachines(s).map((x) => [x.id, x.allocation?.hostname])).toEqual([["a", "web1"]]);
    expect(applyWatchMessage(s, msg({ case: "reset", value: { $typeName: "metal.api.v1.MachineWatchReset", prunedRevision: 9n } }))).toBe(true);
    expect(s.live).toBe(false);
    expect(s.machines.size).toBe(0);
  });

  it("re-renders a row only when its text changes, not when its machine object is replaced", () => {
    const now = Date.now();
    const before = m("a", "web1");
    const view = rowView(before, now);
    expect(rowView(before, now)).toBe(view);
    expect(view.cells).toEqual(machineColumns.map((c) => c.value(before, now)));
    // The same machine again (a new snapshot after a reconnect, a change of a column not shown): the same row.
    expect(sameRow({ view }, { view: rowView(m("a", "web1"), now) })).toBe(true);
    expect(sameRow({ view }, { view: rowView(m("a", "web2"), now) })).toBe(false);
  });
});
