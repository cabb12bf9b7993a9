import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import type { MachineEventsRow, MachineRow } from "../../db/schema/index.js";
import { failedPrecondition } from "../../errors.js";
import { machineAdminRepository as admin, machineRepository as machines } from "../../repositories/machine-repository.js";

/**
 * An operator removes a machine record: refused while the machine is allocated
 * or still alive (it would register again at its next boot anyway). Returns the
 * record as it was, with its events.
 */
export async function deleteMachineRecord(db: DbHandle, id: string): Promise<{ machine: MachineRow; events: MachineEventsRow | undefined }> {
  return inTransaction(db, async (tx) => {
    const m = await machines.lock(tx, id);
    if (m.allocation) throw failedPrecondition(`machine "${id}" is allocated; free it first`);
    const { events } = await machines.get(tx, id);
    if (events && events.liveliness !== "Dead") {
      throw failedPrecondition(`machine "${id}" is ${events.liveliness.toLowerCase()}, not dead; power it off and wait until it is dead`);
    }
    await admin.delete(tx, id);
    return { machine: m, events };
  });
}
