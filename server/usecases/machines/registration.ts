import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import type { StoredHardware } from "../../db/schema/index.js";
import { registrationMayTakeOver } from "../../domain/bare-record.js";
import { matchSize, UNKNOWN_SIZE } from "../../domain/size.js";
import { wireMachine } from "../../domain/switch-wiring.js";
import { failedPrecondition } from "../../errors.js";
import { machineAdminRepository as machineAdmin, machineRepository as machines } from "../../repositories/machine-repository.js";
import { sizeRepository as sizes } from "../../repositories/size-repository.js";
import { machineRegistrationRepository as registrations, switchRepository as switches } from "../../repositories/switch-repository.js";
import { referenceHolds } from "../../repositories/usage-repository.js";

/** The hardware inventory metal-hammer reports, as it is stored. */
export type RegisteredHardware = StoredHardware;

export interface MachineRegistration {
  partition: string;
  /** Lower case. */
  machineId: string;
  hardware: RegisteredHardware;
  bios: { vendor: string; version: string; date: string };
}

/**
 * Registers a machine's hardware: all or nothing. Hardware, the size it
 * matches and its cabling (exactly two leaves of one rack) are stored
 * together, or (when the machine is not cabled that way yet) nothing is, and
 * metal-hammer tries again. A bare record another partition created is no
 * claim on the machine; one registered in another partition is.
 */
export async function registerMachine(db: DbHandle, r: MachineRegistration): Promise<{ sizeId: string; rackId: string }> {
  const { partition, machineId, hardware } = r;
  return inTransaction(db, async (tx) => {
    // Held, not just read: a partition or size delete waits for this registration and then counts it.
    await referenceHolds.partition(tx, partition);
    await machines.ensure(tx, [machineId], partition);
    let machine = (await machines.lockWithEvents(tx, [machineId]))[0]!.machine;
    if (registrationMayTakeOver(machine, partition)) {
      // Another partition's bare record is no claim (see registrationMayTakeOver): it starts over here.
      await machineAdmin.delete(tx, machineId);
      await machines.ensure(tx, [machineId], partition);
      machine = (await machines.lockWithEvents(tx, [machineId]))[0]!.machine;
    }
    if (machine.partitionId && machine.partitionId !== partition) {
      throw failedPrecondition(`machine "${machineId}" is registered in partition "${machine.partitionId}", not "${partition}"`);
    }
    const sizeId = matchSize(
      (await sizes.all(tx)).map((s) => ({ id: s.id, constraints: s.constraints })),
      {
        cpus: hardware.cpus.map((c) => ({ model: c.model, cores: c.cores })),
        memoryBytes: hardware.memoryBytes,
        disks: hardware.disks,
        gpus: hardware.gpus,
      },
    );
    if (sizeId !== UNKNOWN_SIZE) await referenceHolds.size(tx, sizeId);
    const wiring = wireMachine(
      hardware.nics,
      (await switches.ofPartition(tx, partition)).map((s) => ({ id: s.id, name: s.id, rack: s.rackId, nics: s.nics })),
    );
    if (!wiring.ok) throw failedPrecondition(`machine "${machineId}" cannot be registered yet: ${wiring.reason}`);
    await registrations.save(tx, machineId, { sizeId, rackId: wiring.rack, hardware, bios: r.bios });
    await switches.replaceConnections(tx, machineId, wiring.connections);
    return { sizeId, rackId: wiring.rack };
  });
}
