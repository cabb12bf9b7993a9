import { containerFromRow } from "../convert/machine.js";
import { inTransaction } from "../db/database.js";
import type { DbHandle } from "../db/handle.js";
import { evaluateLiveliness } from "../domain/provisioning.js";
import { machineRepository as machines } from "../repositories/machine-repository.js";

const LIVELINESS_LOCK = 7105;

/**
 * Re-evaluates every machine's liveliness (5 minutes of silence: Dead when
 * free, Unknown when allocated). Runs on one replica at a time: the others
 * find the advisory lock taken and skip. Returns how many machines changed,
 * or undefined when skipped.
 */
export async function runLivelinessJob(db: DbHandle, now = new Date()): Promise<number | undefined> {
  return inTransaction(db, async (tx) => {
    if (!(await machines.tryJobLock(tx, LIVELINESS_LOCK))) return undefined;
    let changed = 0;
    for (const { events: row, allocated } of await machines.lockAllEvents(tx)) {
      // A silent allocated machine is Unknown (its tenant may have turned phoning home off), a silent free one Dead.
      const next = evaluateLiveliness(containerFromRow(row), allocated, now);
      if (next !== row.liveliness) {
        await machines.setLiveliness(tx, row.machineId, next);
        changed++;
      }
    }
    return changed;
  });
}
