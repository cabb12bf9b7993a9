import { bmcCommandsTopic, type FanoutBus } from "../bus/fanout.js";
import { containerFromRow } from "../convert/machine.js";
import { inTransaction } from "../db/database.js";
import type { DbHandle } from "../db/handle.js";
import { EventType, needsResurrection } from "../domain/provisioning.js";
import { machineLifecycleRepository as lifecycle, machineRepository as machines } from "../repositories/machine-repository.js";
import { recordEvents } from "../usecases/machines/events.js";
import { COMMAND_DEADLINE_MS } from "../usecases/machines/lifecycle.js";

const RESURRECTION_LOCK = 7107;

/**
 * Sends free machines that are dead for an hour, or still run their OS after
 * being freed, through the reclaim flow again: the BMC boots them from PXE
 * and resets them, and Machine Reclaim is recorded. One replica at a time.
 * Returns the machines it reclaimed, or undefined when another replica runs it.
 */
export async function runResurrectionJob(db: DbHandle, now = new Date(), bus?: FanoutBus): Promise<string[] | undefined> {
  const reclaimed = await inTransaction(db, async (tx) => {
    if (!(await machines.tryJobLock(tx, RESURRECTION_LOCK))) return undefined;
    const due: { id: string; partition: string }[] = [];
    for (const { machine, events } of await machines.freeWithEvents(tx)) {
      if (!events || !machine.partitionId || !needsResurrection(containerFromRow(events), false, now)) continue;
      await lifecycle.enqueueCommands(tx, machine.id, machine.partitionId, ["BOOT_FROM_PXE", "RESET"], new Date(now.getTime() + COMMAND_DEADLINE_MS));
      due.push({ id: machine.id, partition: machine.partitionId });
    }
    return due;
  });
  if (!reclaimed) return undefined;
  for (const partition of new Set(reclaimed.map((m) => m.partition))) bus?.publish(bmcCommandsTopic(partition));
  for (const m of reclaimed) {
    await recordEvents(db, m.partition, [{ machineId: m.id, type: EventType.MACHINE_RECLAIM, rawType: 0, message: "resurrected: the machine went through reclaim again" }]);
  }
  return reclaimed.map((m) => m.id);
}
