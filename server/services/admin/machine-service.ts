import type { ServiceImpl } from "@connectrpc/connect";
import { MachineService } from "../../../gen/metal/admin/v1/machine_pb.js";
import { containerFromRow, toProtoMachine } from "../../convert/machine.js";
import type { Db } from "../../db/database.js";
import { machineIssues } from "../../domain/machine-issues.js";
import { machineRepository as machines } from "../../repositories/machine-repository.js";
import { pageRequest } from "../../repositories/paging.js";

export function createAdminMachineService({ db }: { db: Db<any> }): ServiceImpl<typeof MachineService> {
  return {
    async get(req) {
      const { machine, events } = await machines.get(db, req.id);
      return { machine: toProtoMachine(machine, events ? containerFromRow(events) : undefined) };
    },
    async list(req) {
      const page = await machines.list(db, { partition: req.partition }, pageRequest(req.paging));
      return {
        machines: page.items.map((m) => toProtoMachine(m.machine, m.events ? containerFromRow(m.events) : undefined)),
        nextPageToken: page.nextPageToken,
      };
    },
    async issues(req) {
      const page = await machines.list(db, { partition: req.partition }, pageRequest(req.paging));
      const now = new Date();
      const found = page.items
        .map((m) => ({
          machineId: m.machine.id,
          // BMC data and allocations arrive with the BMC and allocation work; until then those rules have nothing to check.
          issues: machineIssues(
            { partition: m.machine.partitionId ?? "", allocated: false, events: m.events ? containerFromRow(m.events) : undefined, bmc: undefined, bmcAddressShared: false },
            now,
          ),
        }))
        .filter((m) => m.issues.length > 0);
      return { machines: found, nextPageToken: page.nextPageToken };
    },
  };
}
