/**
 * What a machine Watch stream means for the table: a pure reducer, kept
 * apart from the stream so it can be tested without a browser. The
 * messages are the same for the tenant and the operator watch.
 */
import type { Machine, MachineServiceWatchResponse } from "../gen/metal/api/v1/machine_pb.js";

export type WatchMessage = MachineServiceWatchResponse["message"];

export interface WatchState {
  /** By id; replaced (not mutated) on each change so React sees new rows. */
  readonly machines: Map<string, Machine>;
  /** The snapshot is complete: the table shows the truth from now on. */
  live: boolean;
  /** The revision to resume after (a snapshot_done, or a change marked last in its revision). */
  resumeAfter: bigint | undefined;
}

export const emptyWatchState = (): WatchState => ({ machines: new Map(), live: false, resumeAfter: undefined });

/** Applies one message; true when what the table shows changed (snapshot rows count only once the snapshot is done). */
export function applyWatchMessage(s: WatchState, m: WatchMessage): boolean {
  switch (m.case) {
    case "reset":
      s.machines.clear();
      s.live = false;
      return true;
    case "snapshot":
      s.machines.set(m.value.id, m.value);
      return s.live;
    case "snapshotBatch":
      for (const machine of m.value.machines) s.machines.set(machine.id, machine);
      return s.live;
    case "snapshotDone":
      s.live = true;
      s.resumeAfter = m.value.revision;
      return true;
    case "change": {
      const c = m.value;
      if (c.lastInRevision) s.resumeAfter = c.revision;
      if (c.machine) s.machines.set(c.id, c.machine);
      else s.machines.delete(c.id);
      return s.live;
    }
    case "eventsAdded": {
      const e = m.value;
      if (e.lastInRevision) s.resumeAfter = e.revision;
      // The change that carries the whole machine follows; these only add lines to an open detail page.
      const machine = s.machines.get(e.id);
      if (machine?.events) {
        const known = new Set(machine.events.log.map((x) => `${x.time?.seconds}:${x.time?.nanos}:${x.type}`));
        const added = e.events.filter((x) => !known.has(`${x.time?.seconds}:${x.time?.nanos}:${x.type}`));
        if (added.length === 0) return false;
        s.machines.set(e.id, { ...machine, events: { ...machine.events, log: [...added, ...machine.events.log] } });
      }
      return s.live;
    }
    default:
      return false;
  }
}

/** Rows in metalctl's order: by id. */
export const sortedMachines = (s: WatchState): Machine[] => [...s.machines.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
