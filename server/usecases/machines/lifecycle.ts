import type { BootServiceAbortReinstallRequest, BootServiceInstallationSucceededRequest } from "../../../gen/metal/infra/v1/boot_pb.js";
import { allocationTopic, bmcCommandsTopic, type FanoutBus, publishSwitchChanges } from "../../bus/fanout.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import type { BmcCommandRow, MachineRow, StoredAllocation } from "../../db/schema/index.js";
import { noteProject } from "../../db/transaction-hook.js";
import { BmcCommandName, FREE_COMMANDS, isPlannedReboot, ledStateAfter, REINSTALL_COMMANDS } from "../../domain/bmc-command.js";
import { layoutReinstallable } from "../../domain/filesystem-layout.js";
import { machineTags, SystemTag } from "../../domain/machine-tags.js";
import type { ProjectScope } from "../../domain/project-scope.js";
import { EventType } from "../../domain/provisioning.js";
import { conflict, failedPrecondition, notFound, unauthenticated } from "../../errors.js";
import { type BusinessEvents, NO_BUSINESS_EVENTS, outcomeOf } from "../../metrics/events.js";
import { filesystemLayoutRepository as layouts } from "../../repositories/image-repository.js";
import { machineCredentialRepository } from "../../repositories/machine-credential-repository.js";
import { machineLifecycleRepository as lifecycle, machineRepository as machines } from "../../repositories/machine-repository.js";
import { tenantMachineRepository as tenantMachines } from "../../repositories/tenant/machine-repository.js";
import { referenceHolds } from "../../repositories/usage-repository.js";
import { assertImageAllowed, lookupImage } from "../images/lookup.js";
import { recordEvents } from "./events.js";

/** How long metal-bmc has to carry out a command before it counts as timed out. */
export const COMMAND_DEADLINE_MS = 5 * 60_000;

const SUPERSEDED_CREDENTIAL = "the machine credential is void: the machine's installation succeeded since it was issued; a new boot gets a new one";

/**
 * The installed machine reports back: its console password and boot
 * information are stored, its switch ports move into the tenant's VRF, and
 * the BMC is told to boot from disk from now on. One transaction.
 */
export async function installationSucceeded(db: DbHandle, req: BootServiceInstallationSucceededRequest, bus?: FanoutBus, opts: { repeatOnly?: boolean } = {}): Promise<void> {
  const changedSwitches = await inTransaction(db, async (tx) => {
    const m = await machines.lock(tx, req.machineId.toLowerCase());
    // A superseded machine credential may only repeat the report already made; decided under the lock, so a reinstall started meanwhile counts.
    if (opts.repeatOnly && !(m.allocation?.succeeded && !m.allocation.reinstall)) throw unauthenticated(SUPERSEDED_CREDENTIAL);
    if (m.partitionId !== req.partition) throw notFound("machine", m.id);
    if (!m.allocation) throw failedPrecondition(`machine "${m.id}" is not allocated; there is nothing it could have installed`);
    // A repeat (the hammer retrying after a lost answer, with its now superseded credential) changes nothing.
    if (m.allocation.succeeded && !m.allocation.reinstall) return [];
    const b = req.bootInfo!;
    const { previousImage: _, ...rest } = m.allocation;
    await lifecycle.setAllocation(tx, m.id, {
      ...rest,
      consolePassword: req.consolePassword,
      bootInfo: { imageId: b.imageId, primaryDisk: b.primaryDisk, osPartition: b.osPartition, initrd: b.initrd, cmdline: b.cmdline, kernel: b.kernel, bootloaderId: b.bootloaderId },
      succeeded: true,
      reinstall: false,
    });
    // Every credential the discovery image held is void from now on: the installed OS is the tenant's.
    await machineCredentialRepository.nextGeneration(tx, m.id);
    return bootInstalledOs(tx, m);
  });
  publishSwitchChanges(bus, changedSwitches);
  bus?.publish(bmcCommandsTopic(req.partition));
}

/** The installed OS takes over: ports into the tenant's VRF (firewalls: the default VRF), boot from disk. */
async function bootInstalledOs(tx: DbHandle, m: MachineRow): Promise<string[]> {
  const a = m.allocation!;
  const primary = a.networks.find((n) => n.primary);
  const changedSwitches = await lifecycle.setPortVrf(tx, m.id, a.role === "firewall" ? "default" : `vrf${primary?.vrf ?? 0}`);
  await lifecycle.enqueueCommands(tx, m.id, m.partitionId!, [BmcCommandName.BOOT_FROM_DISK], deadline());
  return changedSwitches;
}

const deadline = () => new Date(Date.now() + COMMAND_DEADLINE_MS);

/**
 * Reinstall keeps the allocation (networks, IPs, ASN) and installs another
 * image: the switch ports leave the tenant VRF, the machine boots from the
 * network, and metal-hammer, finding it allocated, installs the new image,
 * wiping only the disks the layout marks for it. Refused for locked machines,
 * machines not installed yet, and layouts that would wipe nothing.
 */
export async function reinstallMachine(db: DbHandle, scope: ProjectScope, id: string, imageRef: string, bus?: FanoutBus): Promise<MachineRow> {
  const { row, changedSwitches } = await inTransaction(db, async (tx) => {
    const m = await tenantMachines.lockAllocated(tx, scope, id);
    if (m.state === "locked") throw failedPrecondition(`machine "${id}" is locked; an operator has to unlock it before it can be reinstalled`);
    if (m.allocation.reinstall) throw failedPrecondition(`machine "${id}" is already being reinstalled`);
    if (!m.allocation.succeeded) throw failedPrecondition(`machine "${id}" has not finished its installation yet`);
    const image = await lookupImage(tx, imageRef, m.allocation.role === "firewall" ? 2 : 1);
    await assertImageAllowed(tx, m.sizeId ?? "", image);
    // Held until commit: an image delete waits for this reinstall and then counts it.
    await referenceHolds.image(tx, image.id);
    const layout = await layouts.get(tx, m.allocation.filesystemLayout);
    if (!layoutReinstallable(layout.spec)) throw failedPrecondition(`filesystem layout "${layout.id}" wipes no disk on reinstall; the machine cannot be reinstalled`);
    const saved = await lifecycle.setAllocation(tx, id, { ...m.allocation, image: image.id, previousImage: m.allocation.image, reinstall: true, succeeded: false });
    const changedSwitches = await lifecycle.setPortVrf(tx, id, null);
    await lifecycle.enqueueCommands(tx, id, m.partitionId!, REINSTALL_COMMANDS, deadline());
    return { row: saved, changedSwitches };
  });
  publishSwitchChanges(bus, changedSwitches);
  bus?.publish(bmcCommandsTopic(row.partitionId!));
  await recordEvents(db, row.partitionId!, [{ machineId: id, type: EventType.PLANNED_REBOOT, rawType: 0, message: `reinstall with ${row.allocation!.image}` }]);
  return row;
}

/**
 * metal-hammer could not install the new image: the previous one is restored
 * in the allocation. When its disk survived, the old OS boots again from disk
 * in the tenant's VRF; when it was wiped, the machine stays in PXE and the
 * tenant has to reinstall. Returns how the previous OS boots.
 */
export async function abortReinstall(db: DbHandle, req: BootServiceAbortReinstallRequest, bus?: FanoutBus): Promise<NonNullable<StoredAllocation["bootInfo"]>> {
  const { bootInfo, changedSwitches } = await inTransaction(db, async (tx) => {
    const m = await machines.lock(tx, req.machineId.toLowerCase());
    if (m.partitionId !== req.partition) throw notFound("machine", m.id);
    const a = m.allocation;
    if (!a?.reinstall || !a.previousImage || !a.bootInfo) throw failedPrecondition(`machine "${m.id}" is not being reinstalled`);
    const { previousImage, ...rest } = a;
    const restored = await lifecycle.setAllocation(tx, m.id, { ...rest, image: previousImage, reinstall: false, succeeded: !req.primaryDiskWiped });
    if (req.primaryDiskWiped) return { bootInfo: a.bootInfo, changedSwitches: [] };
    // The tenant's old OS runs next: what the discovery image held is void, as after a successful installation.
    // (A wiped disk keeps the machine in the discovery image, which still needs its credential.)
    await machineCredentialRepository.nextGeneration(tx, m.id);
    const changedSwitches = await bootInstalledOs(tx, restored);
    return { bootInfo: a.bootInfo, changedSwitches };
  });
  publishSwitchChanges(bus, changedSwitches);
  if (!req.primaryDiskWiped) bus?.publish(bmcCommandsTopic(req.partition));
  return bootInfo;
}

/** Changes what a tenant may change of an allocated machine: description, tags, SSH keys. */
export async function updateMachine(db: DbHandle, scope: ProjectScope, id: string, version: number, patch: { description?: string; tags?: string[]; sshKeys?: string[] }): Promise<MachineRow> {
  return inTransaction(db, async (tx) => {
    const m = await tenantMachines.lockAllocated(tx, scope, id);
    if (m.version !== version) throw conflict("machine", id, version, m.version);
    const a = { ...m.allocation };
    if (patch.description !== undefined) a.description = patch.description;
    if (patch.sshKeys !== undefined) a.sshKeys = patch.sshKeys;
    // System tags and placement tags stay: only the user's part of the tags is replaced.
    const tags = patch.tags === undefined ? undefined : machineTags(patch.tags, [], systemTagsOf(m.tags));
    return lifecycle.setAllocation(tx, id, a, tags);
  });
}

/** The system tags a machine carries (they survive a tag update). */
function systemTagsOf(tags: readonly string[]): Record<string, string> {
  const reserved = new Set<string>(Object.values(SystemTag));
  const out: Record<string, string> = {};
  for (const t of tags) {
    const eq = t.indexOf("=");
    if (eq > 0 && reserved.has(t.slice(0, eq))) out[t.slice(0, eq)] = t.slice(eq + 1);
  }
  return out;
}

/** The console password of an installed machine of the project. */
export async function consolePassword(db: DbHandle, scope: ProjectScope, id: string): Promise<string> {
  const { machine } = await tenantMachines.get(db, scope, id);
  if (!machine.allocation) throw notFound("machine", id);
  if (!machine.allocation.consolePassword) throw failedPrecondition(`machine "${id}" has no console password yet; it is set when the installation succeeds`);
  return machine.allocation.consolePassword;
}

/**
 * Queues a BMC command. LED commands record the LED state; commands that
 * take the OS down are recorded as Planned Reboot so they do not read as a
 * crash. Bare machines without a partition cannot be reached.
 */
export async function queueBmcCommand(db: DbHandle, id: string, command: BmcCommandName, description: string, bus?: FanoutBus): Promise<{ command: BmcCommandRow; machine: MachineRow }> {
  const out = await inTransaction(db, async (tx) => queueBmcCommandOnLocked(tx, await machines.lock(tx, id), command, description));
  bus?.publish(bmcCommandsTopic(out.machine.partitionId!));
  return out;
}

/** queueBmcCommand's work on a machine the transaction `tx` holds locked (the tenant path checks its own rules first); publish after commit. */
export async function queueBmcCommandOnLocked(tx: DbHandle, locked: MachineRow, command: BmcCommandName, description: string): Promise<{ command: BmcCommandRow; machine: MachineRow }> {
  let m = locked;
  const { id, partitionId: partition } = m;
  // An operator's command on an allocated machine shows in its project's audit trail.
  noteProject(m.allocation?.project);
  if (!partition) throw failedPrecondition(`machine "${id}" is in no partition; no metal-bmc can reach it`);
  const [queued] = await lifecycle.enqueueCommands(tx, id, partition, [command], deadline());
  const led = ledStateAfter(command);
  if (led) m = await lifecycle.setLed(tx, id, led, description);
  // In the command's transaction: a metal-bmc that sees the command (woken, or at its next poll) and
  // reboots the machine at once must find the Planned Reboot recorded before the boot that follows it.
  if (isPlannedReboot(command)) await recordEvents(tx, partition, [{ machineId: id, type: EventType.PLANNED_REBOOT, rawType: 0, message: command }]);
  return { command: queued!, machine: m };
}

/**
 * Frees a machine: refused while locked; ephemeral IPs and the ASN are
 * released, static IPs stay with the project; the switch ports go back to the
 * PXE VLAN; the BMC is told to switch the LED off, boot from PXE and reset, so
 * metal-hammer wipes the disks and waits again. Machine Reclaim is recorded
 * in the same transaction: metal-bmc may reset the machine the moment it sees
 * the commands, and the boot that follows must come after the reclaim.
 */
export async function freeMachine(db: DbHandle, scope: ProjectScope, id: string, bus?: FanoutBus, events: BusinessEvents = NO_BUSINESS_EVENTS): Promise<MachineRow> {
  // Labelled by partition and size once the machine was found (and is the caller's): a request cannot mint series.
  const counted = { partition: "", size: "" };
  const freed = await inTransaction(db, async (tx) => {
    const m = await tenantMachines.lockAllocated(tx, scope, id);
    counted.partition = m.partitionId ?? "";
    counted.size = m.sizeId ?? "";
    if (m.state === "locked") throw failedPrecondition(`machine "${id}" is locked; an operator has to unlock it before it can be freed`);
    await lifecycle.release(tx, id);
    const changedSwitches = await lifecycle.setPortVrf(tx, id, null);
    await lifecycle.enqueueCommands(tx, id, m.partitionId!, FREE_COMMANDS, deadline());
    await recordEvents(tx, m.partitionId!, [{ machineId: id, type: EventType.MACHINE_RECLAIM, rawType: 0, message: "machine was freed" }]);
    return { row: { ...m, allocation: null, project: null, tags: [] }, changedSwitches };
  }).catch((err: unknown) => {
    events.free({ ...counted, outcome: outcomeOf(err) });
    throw err;
  });
  events.free({ ...counted, outcome: outcomeOf() });
  const { row, changedSwitches } = freed;
  publishSwitchChanges(bus, changedSwitches);
  bus?.publish(bmcCommandsTopic(row.partitionId!));
  // Open consoles of the machine re-check at once: the tenant must not see the reclaim or the next allocation.
  bus?.publish(allocationTopic(id));
  return row;
}
