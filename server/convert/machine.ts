import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { BmcCommandStatus, type MachineCommand, MachineCommandSchema, BmcCommand as ProtoBmcCommand } from "../../gen/metal/admin/v1/machine_pb.js";
import {
  type Machine,
  type MachineAllocation,
  MachineAllocationSchema,
  type MachineBmc,
  MachineBmcSchema,
  type MachineEvents,
  MachineEventsSchema,
  type MachineHardwareSummary,
  MachineHardwareSummarySchema,
  MachineLiveliness,
  MachineRole,
  MachineSchema,
  MachineState,
  ProvisioningEventType,
} from "../../gen/metal/api/v1/machine_pb.js";
import type { BmcCommandRow, MachineEventsRow, MachineRow, StoredAllocation, StoredBmc, StoredEvent, StoredHardware } from "../db/schema/index.js";
import { BmcCommandName } from "../domain/bmc-command.js";
import { type EventContainer, EventType, type Liveliness, type ProvisioningEvent } from "../domain/provisioning.js";
import { toProtoMeta } from "./meta.js";

/** Proto event types and the original's event names, one to one. */
const eventTypes: [ProvisioningEventType, EventType][] = [
  [ProvisioningEventType.PXE_BOOTING, EventType.PXE_BOOTING],
  [ProvisioningEventType.PREPARING, EventType.PREPARING],
  [ProvisioningEventType.REGISTERING, EventType.REGISTERING],
  [ProvisioningEventType.WAITING, EventType.WAITING],
  [ProvisioningEventType.INSTALLING, EventType.INSTALLING],
  [ProvisioningEventType.BOOTING_NEW_KERNEL, EventType.BOOTING_NEW_KERNEL],
  [ProvisioningEventType.PHONED_HOME, EventType.PHONED_HOME],
  [ProvisioningEventType.PLANNED_REBOOT, EventType.PLANNED_REBOOT],
  [ProvisioningEventType.MACHINE_RECLAIM, EventType.MACHINE_RECLAIM],
  [ProvisioningEventType.ALIVE, EventType.ALIVE],
  [ProvisioningEventType.CRASHED, EventType.CRASHED],
];
const toDomainType = new Map(eventTypes);
const toProtoType = new Map(eventTypes.map(([p, d]) => [d, p]));

export const eventTypeFromProto = (t: ProvisioningEventType): EventType | undefined => toDomainType.get(t);

const liveliness: Record<Liveliness, MachineLiveliness> = {
  Alive: MachineLiveliness.ALIVE,
  Dead: MachineLiveliness.DEAD,
  Unknown: MachineLiveliness.UNKNOWN,
};

const storeEvent = (e: ProvisioningEvent): StoredEvent => ({ ...e, time: e.time.toISOString() });
const loadEvent = (e: StoredEvent): ProvisioningEvent => ({ ...e, time: new Date(e.time) });

export function containerFromRow(row: MachineEventsRow): EventContainer {
  return {
    liveliness: row.liveliness,
    events: row.events.map(loadEvent),
    lastEventTime: row.lastEventTime ?? undefined,
    lastErrorEvent: row.lastErrorEvent ? loadEvent(row.lastErrorEvent) : undefined,
    crashLoop: row.crashLoop,
    failedMachineReclaim: row.failedMachineReclaim,
  };
}

export function rowFromContainer(machineId: string, c: EventContainer): MachineEventsRow {
  return {
    machineId,
    liveliness: c.liveliness,
    events: c.events.map(storeEvent),
    lastEventTime: c.lastEventTime ?? null,
    lastErrorEvent: c.lastErrorEvent ? storeEvent(c.lastErrorEvent) : null,
    crashLoop: c.crashLoop,
    failedMachineReclaim: c.failedMachineReclaim,
  };
}

const protoEvent = (e: ProvisioningEvent) => ({ type: toProtoType.get(e.type)!, message: e.message, time: timestampFromDate(e.time) });

const machineStates: Record<MachineRow["state"], MachineState> = {
  available: MachineState.AVAILABLE,
  tainted: MachineState.TAINTED,
  locked: MachineState.LOCKED,
};

/** The stored state for a proto state; undefined for UNSPECIFIED or unknown values. */
export const machineStateFromProto = (s: MachineState): MachineRow["state"] | undefined => (Object.entries(machineStates) as [MachineRow["state"], MachineState][]).find(([, v]) => v === s)?.[0];

export function toProtoAllocation(a: StoredAllocation): MachineAllocation {
  return create(MachineAllocationSchema, {
    uuid: a.uuid,
    project: a.project,
    name: a.name,
    description: a.description,
    hostname: a.hostname,
    role: a.role === "firewall" ? MachineRole.FIREWALL : MachineRole.MACHINE,
    image: a.image,
    filesystemLayout: a.filesystemLayout,
    sshKeys: a.sshKeys,
    userData: a.userData,
    asn: BigInt(a.asn),
    networks: a.networks,
    createdAt: timestampFromDate(new Date(a.createdAt)),
    createdBy: a.createdBy,
    dnsServers: a.dnsServers ?? [],
    ntpServers: a.ntpServers ?? [],
    installed: a.succeeded === true,
    reinstalling: a.reinstall === true,
  });
}

/** The BMC as tenants and operators see it; the credentials are deliberately not part of it. */
function toProtoBmc(b: StoredBmc): MachineBmc {
  return create(MachineBmcSchema, {
    address: b.address,
    mac: b.mac,
    interface: b.interface,
    version: b.version,
    powerState: b.powerState,
    fru: b.fru,
    lastUpdated: timestampFromDate(new Date(b.lastUpdated)),
  });
}

function toProtoHardware(h: StoredHardware): MachineHardwareSummary {
  return create(MachineHardwareSummarySchema, {
    memoryBytes: BigInt(h.memoryBytes),
    cpuCores: h.cpus.reduce((n, c) => n + c.cores, 0),
    cpuModels: h.cpus.map((c) => c.model),
    disks: h.disks.map((d) => ({ name: d.name, sizeBytes: BigInt(d.sizeBytes) })),
    nics: h.nics.map((n) => ({ name: n.name, mac: n.mac, neighbors: n.neighbors.map((x) => `${x.hostname}/${x.port}`) })),
  });
}

const commandStatus: Record<BmcCommandRow["status"], BmcCommandStatus> = {
  pending: BmcCommandStatus.PENDING,
  done: BmcCommandStatus.DONE,
  failed: BmcCommandStatus.FAILED,
  timed_out: BmcCommandStatus.TIMED_OUT,
};

export function toProtoCommand(r: BmcCommandRow): MachineCommand {
  return create(MachineCommandSchema, {
    id: r.id,
    machineId: r.machineId,
    command: r.command,
    status: commandStatus[r.status],
    result: r.result,
    createdAt: timestampFromDate(r.createdAt),
    deadline: timestampFromDate(r.deadline),
  });
}

const bmcCommands: [ProtoBmcCommand, BmcCommandName][] = [
  [ProtoBmcCommand.POWER_ON, BmcCommandName.POWER_ON],
  [ProtoBmcCommand.POWER_OFF, BmcCommandName.POWER_OFF],
  [ProtoBmcCommand.RESET, BmcCommandName.RESET],
  [ProtoBmcCommand.CYCLE, BmcCommandName.CYCLE],
  [ProtoBmcCommand.BOOT_BIOS, BmcCommandName.BOOT_FROM_BIOS],
  [ProtoBmcCommand.BOOT_DISK, BmcCommandName.BOOT_FROM_DISK],
  [ProtoBmcCommand.BOOT_PXE, BmcCommandName.BOOT_FROM_PXE],
  [ProtoBmcCommand.LED_ON, BmcCommandName.LED_ON],
  [ProtoBmcCommand.LED_OFF, BmcCommandName.LED_OFF],
];
const toCommandName = new Map(bmcCommands);

/** The stored command for a proto command; undefined for UNSPECIFIED or unknown values. */
export const bmcCommandFromProto = (c: ProtoBmcCommand): BmcCommandName | undefined => toCommandName.get(c);

export const machineRoleFromProto = (r: MachineRole): StoredAllocation["role"] | undefined =>
  r === MachineRole.UNSPECIFIED || r === MachineRole.MACHINE ? "machine" : r === MachineRole.FIREWALL ? "firewall" : undefined;

export const toProtoEvents = (events: EventContainer | undefined): MachineEvents =>
  create(
    MachineEventsSchema,
    events
      ? {
          liveliness: liveliness[events.liveliness],
          log: events.events.map(protoEvent),
          lastEventTime: events.lastEventTime ? timestampFromDate(events.lastEventTime) : undefined,
          lastErrorEvent: events.lastErrorEvent ? protoEvent(events.lastErrorEvent) : undefined,
          crashLoop: events.crashLoop,
          failedMachineReclaim: events.failedMachineReclaim,
        }
      : { liveliness: MachineLiveliness.UNKNOWN },
  );

/**
 * The machine as an operator may see it. Secrets (the tenant's user data,
 * which routinely carries passwords and keys) go only to callers allowed to
 * read them; the others get the field blank, not missing, so a client shows
 * "withheld" rather than "none".
 */
export function toOperatorMachine(row: MachineRow, events: EventContainer | undefined, secrets: boolean): Machine {
  const m = toProtoMachine(row, events);
  if (!secrets && m.allocation) m.allocation.userData = "";
  return m;
}

/**
 * A machine as a Watch with summary sends it: what a list of machines shows (the columns and status markers of
 * `metalctl machine list` and the web console) without the rest. A new message: `m` may be a view other
 * watchers share.
 */
export function toMachineSummary(m: Machine): Machine {
  const a = m.allocation;
  const e = m.events;
  return create(MachineSchema, {
    ...m,
    hardware: undefined,
    bmc: undefined,
    allocation: a ? create(MachineAllocationSchema, { ...a, networks: [], sshKeys: [], userData: "", dnsServers: [], ntpServers: [] }) : undefined,
    events: e ? create(MachineEventsSchema, { ...e, log: e.log.slice(0, 1) }) : undefined,
  });
}

/** The BMC login of admin MachineService.Get: only for callers allowed to read secrets, and only once a BMC has reported one. */
export function toOperatorBmcCredentials(row: MachineRow, secrets: boolean): { user: string; password: string } | undefined {
  return secrets && row.bmc ? { user: row.bmc.user, password: row.bmc.password } : undefined;
}

export function toProtoMachine(row: MachineRow, events: EventContainer | undefined): Machine {
  return create(MachineSchema, {
    id: row.id,
    partition: row.partitionId ?? "",
    size: row.sizeId ?? "",
    rack: row.rackId ?? "",
    allocation: row.allocation ? toProtoAllocation(row.allocation) : undefined,
    waiting: row.waitingUntil !== null && row.waitingUntil.getTime() > Date.now(),
    state: machineStates[row.state],
    stateReason: row.stateReason,
    events: toProtoEvents(events),
    tags: row.tags,
    bmc: row.bmc ? toProtoBmc(row.bmc) : undefined,
    led: { state: row.ledState, description: row.ledDescription },
    hardware: row.hardware ? toProtoHardware(row.hardware) : undefined,
    meta: toProtoMeta(row),
  });
}
