import { create } from "@bufbuild/protobuf";
import { type PartitionCapacity as AdminPartitionCapacity, PartitionCapacitySchema as AdminPartitionCapacitySchema } from "../../gen/metal/admin/v1/partition_pb.js";
import { type PartitionCapacity, PartitionCapacitySchema } from "../../gen/metal/api/v1/partition_pb.js";
import type { MachineEventsRow, StoredBmc } from "../db/schema/index.js";
import type { CapacityInput, CapacityMachine, PartitionCapacity as DomainPartitionCapacity } from "../domain/capacity.js";
import type { MachineFacts } from "../domain/machine-issues.js";
import { UNKNOWN_SIZE } from "../domain/size.js";
import type { CapacityMachineRow, CapacitySnapshot } from "../repositories/capacity-repository.js";
import { containerFromRow } from "./machine.js";

function bmcFacts(bmc: StoredBmc | null): MachineFacts["bmc"] {
  if (!bmc) return undefined;
  const t = bmc.lastUpdated ? new Date(bmc.lastUpdated) : undefined;
  return { mac: bmc.mac ?? "", address: bmc.address ?? "", lastUpdated: t && !Number.isNaN(t.getTime()) ? t : undefined };
}

function capacityMachine(r: CapacityMachineRow): CapacityMachine {
  const events: MachineEventsRow | undefined = r.hasEvents
    ? {
        machineId: r.id,
        liveliness: r.liveliness!,
        events: r.newest ?? [],
        lastEventTime: r.lastEventTime,
        lastErrorEvent: r.lastErrorEvent,
        crashLoop: r.crashLoop ?? false,
        failedMachineReclaim: r.failedMachineReclaim ?? false,
      }
    : undefined;
  return {
    id: r.id,
    partition: r.partition ?? "",
    size: r.size ?? UNKNOWN_SIZE,
    project: r.allocated ? (r.project ?? "") : undefined,
    candidate: r.candidate,
    facts: {
      partition: r.partition ?? "",
      allocated: r.allocated,
      events: events ? containerFromRow(events) : undefined,
      bmc: bmcFacts(r.bmc),
      bmcAddressShared: r.bmcShared,
    },
  };
}

export function capacityInput(snapshot: CapacitySnapshot, project: string | undefined, now: Date): CapacityInput {
  return { partitions: snapshot.partitions, machines: snapshot.machines.map(capacityMachine), reservations: snapshot.reservations, project, now };
}

/** Operators see which machines are faulty or in another state. */
export function toAdminProtoCapacity(p: DomainPartitionCapacity): AdminPartitionCapacity {
  return create(AdminPartitionCapacitySchema, { partition: p.partition, sizes: p.sizes });
}

/** Tenants get the counts only: machine ids are operator business. */
export function toProtoCapacity(p: DomainPartitionCapacity): PartitionCapacity {
  return create(PartitionCapacitySchema, {
    partition: p.partition,
    sizes: p.sizes.map(({ faultyMachines: _f, otherMachines: _o, ...counts }) => counts),
  });
}
