import type { ServiceImpl } from "@connectrpc/connect";
import { MachineService } from "../../../gen/metal/api/v1/machine_pb.js";
import { callerOf } from "../../auth/context.js";
import { containerFromRow, toProtoMachine } from "../../convert/machine.js";
import { notFound } from "../../errors.js";
import { machineRepository as machines } from "../../repositories/machine-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { validateMachineCreate } from "../../validate/machine.js";
import { allocateMachine, type AllocationDeps } from "../machine-allocation.js";
import { freeMachine } from "../machine-lifecycle.js";
import { validator } from "../../validate/validator.js";

/** Tenants allocate machines and see the ones allocated to their project. */
export function createMachineService(deps: AllocationDeps): ServiceImpl<typeof MachineService> {
  const { db } = deps;
  return {
    async get(req) {
      const { machine, events } = await machines.get(db, req.id);
      if (machine.project !== req.project) throw notFound("machine", req.id);
      return { machine: toProtoMachine(machine, events ? containerFromRow(events) : undefined) };
    },
    async list(req) {
      const page = await machines.list(db, { project: req.project }, pageRequest(req.paging));
      return { machines: page.items.map((m) => toProtoMachine(m.machine, m.events ? containerFromRow(m.events) : undefined)), nextPageToken: page.nextPageToken };
    },
    async delete(req) {
      validator().uuid("id", req.id).id("project", req.project, { max: 128 }).check();
      return { machine: toProtoMachine(await freeMachine(db, req.id.toLowerCase(), req.project), undefined) };
    },
    async create(req, ctx) {
      validateMachineCreate(req);
      const row = await allocateMachine(deps, req, callerOf(ctx).subject);
      return { machine: toProtoMachine(row, undefined) };
    },
  };
}
