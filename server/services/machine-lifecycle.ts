import type { BootServiceInstallationSucceededRequest } from "../../gen/metal/infra/v1/boot_pb.js";
import { inTransaction, type Db } from "../db/database.js";
import type { MachineRow } from "../db/schema/index.js";
import { machines } from "../db/schema/index.js";
import { EventType } from "../domain/provisioning.js";
import { failedPrecondition, notFound } from "../errors.js";
import { machineLifecycleRepository as lifecycle } from "../repositories/machine-repository.js";
import { lockById } from "../repositories/versioned.js";
import { recordEvents } from "./machine-events.js";

/** How long metal-bmc has to carry out a command before it counts as timed out. */
export const COMMAND_DEADLINE_MS = 5 * 60_000;

/**
 * The installed machine reports back: its console password and boot
 * information are stored, its switch ports move into the tenant's VRF, and
 * the BMC is told to boot from disk from now on. One transaction.
 */
export async function installationSucceeded(db: Db<any>, req: BootServiceInstallationSucceededRequest): Promise<void> {
  await inTransaction(db, async (tx) => {
    const m = await lockById(tx, machines, "machine", req.machineId.toLowerCase());
    if (m.partitionId !== req.partition) throw notFound("machine", m.id);
    if (!m.allocation) throw failedPrecondition(`machine "${m.id}" is not allocated; there is nothing it could have installed`);
    const b = req.bootInfo!;
    await lifecycle.setAllocation(tx, m.id, {
      ...m.allocation,
      consolePassword: req.consolePassword,
      bootInfo: { imageId: b.imageId, primaryDisk: b.primaryDisk, osPartition: b.osPartition, initrd: b.initrd, cmdline: b.cmdline, kernel: b.kernel, bootloaderId: b.bootloaderId },
      succeeded: true,
    });
    const primary = m.allocation.networks.find((n) => n.primary);
    await lifecycle.setPortVrf(tx, m.id, m.allocation.role === "firewall" ? "default" : `vrf${primary?.vrf ?? 0}`);
    await lifecycle.enqueueCommands(tx, m.id, m.partitionId!, ["BOOT_FROM_DISK"], new Date(Date.now() + COMMAND_DEADLINE_MS));
  });
}

/**
 * Frees a machine: refused while locked; ephemeral IPs and the ASN are
 * released, static IPs stay with the project; the switch ports go back to the
 * PXE VLAN; the BMC is told to switch the LED off, boot from PXE and reset, so
 * metal-hammer wipes the disks and waits again. Machine Reclaim is recorded
 * once the transaction has committed.
 */
export async function freeMachine(db: Db<any>, id: string, project: string): Promise<MachineRow> {
  const row = await inTransaction(db, async (tx) => {
    const m = await lockById(tx, machines, "machine", id);
    if (!m.allocation || m.project !== project) throw notFound("machine", id);
    if (m.state === "locked") throw failedPrecondition(`machine "${id}" is locked; an operator has to unlock it before it can be freed`);
    await lifecycle.release(tx, id);
    await lifecycle.setPortVrf(tx, id, null);
    await lifecycle.enqueueCommands(tx, id, m.partitionId!, ["LED_OFF", "BOOT_FROM_PXE", "RESET"], new Date(Date.now() + COMMAND_DEADLINE_MS));
    return { ...m, allocation: null, project: null };
  });
  await recordEvents(db, row.partitionId!, [{ machineId: id, type: EventType.MACHINE_RECLAIM, rawType: 0, message: "machine was freed" }]);
  return row;
}
