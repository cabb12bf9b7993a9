import type { DbHandle } from "../../db/handle.js";
import { type SyncReport, switchSessionRepository as sessions } from "../../repositories/switch-repository.js";
import { singleFlightBatches } from "../batches.js";

/** Stores a switch's sync report; false when the switch is gone. */
export type SwitchSyncWriter = (switchId: string, report: SyncReport) => Promise<boolean>;

/**
 * One per replica: after a change reached many switches, their reports come
 * in together; the common ones (no port state changed) are stamped with one
 * read and one write for all of them, on `lane`. A report that changes port
 * states waits for its row lock on `db`, outside the batch, so that it holds
 * up no other switch's report. A session waits for each report to be stored
 * before it takes the next, so a switch's reports keep their order.
 * `notifyChanges` is called after each stored report (see sessions/watch/notify.ts).
 */
export function createSwitchSyncWriter(lane: DbHandle, db: DbHandle = lane, notifyChanges: () => void = () => {}): SwitchSyncWriter {
  const stamp = singleFlightBatches((reports: readonly { id: string; report: SyncReport }[]) => sessions.stampSyncs(lane, reports));
  return async (id, report) => {
    const stamped = await stamp({ id, report });
    const stored = stamped === "ports" ? await sessions.recordSyncWithPorts(db, id, report) : stamped === "stamped";
    // A stored report is a change the change log recorded (the switch's last sync): wake its readers (coalesced by the caller).
    if (stored) notifyChanges();
    return stored;
  };
}
