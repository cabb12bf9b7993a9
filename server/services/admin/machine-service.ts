import type { ServiceImpl } from "@connectrpc/connect";
import { MachineService } from "../../../gen/metal/admin/v1/machine_pb.js";
import { containerFromRow, machineStateFromProto, toProtoMachine } from "../../convert/machine.js";
import { inTransaction } from "../../db/database.js";
import { machines } from "../../db/schema/index.js";
import { failedPrecondition } from "../../errors.js";
import { lockById } from "../../repositories/versioned.js";
import { validator } from "../../validate/validator.js";
import type { Db } from "../../db/database.js";
import { machineIssues } from "../../domain/machine-issues.js";
import { machineAdminRepository as admin, machineRepository as machineRepo } from "../../repositories/machine-repository.js";
import { pageRequest } from "../../repositories/paging.js";

export function createAdminMachineService({ db }: { db: Db<any> }): ServiceImpl<typeof MachineService> {
  return {
    async get(req) {
      const { machine, events } = await machineRepo.get(db, req.id);
      return { machine: toProtoMachine(machine, events ? containerFromRow(events) : undefined) };
    },
    async list(req) {
      const page = await machineRepo.list(db, { partition: req.partition }, pageRequest(req.paging));
      return {
        machines: page.items.map((m) => toProtoMachine(m.machine, m.events ? containerFromRow(m.events) : undefined)),
        nextPageToken: page.nextPageToken,
      };
    },
    async setState(req) {
      const v = validator().uuid("id", req.id).text("reason", req.reason, 256);
      const state = machineStateFromProto(req.state);
      if (!state) v.add("state", "must be available, tainted or locked");
      else if (state !== "available" && req.reason.trim() === "") v.add("reason", "is required to taint or lock a machine");
      v.check();
      const row = await inTransaction(db, (tx) => admin.setState(tx, req.id.toLowerCase(), state!, state === "available" ? "" : req.reason));
      return { machine: toProtoMachine(row, undefined) };
    },
    async delete(req) {
      validator().uuid("id", req.id).check();
      const id = req.id.toLowerCase();
      const removed = await inTransaction(db, async (tx) => {
        const m = await lockById(tx, machines, "machine", id);
        if (m.allocation) throw failedPrecondition(`machine "${id}" is allocated; free it first`);
        const { events } = await machineRepo.get(tx, id);
        if (events && events.liveliness !== "Dead") {
          throw failedPrecondition(`machine "${id}" is ${events.liveliness.toLowerCase()}, not dead; power it off and wait until it is dead`);
        }
        await admin.delete(tx, id);
        return { machine: m, events };
      });
      return { machine: toProtoMachine(removed.machine, removed.events ? containerFromRow(removed.events) : undefined) };
    },
    async issues(req) {
      const page = await machineRepo.list(db, { partition: req.partition }, pageRequest(req.paging));
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
