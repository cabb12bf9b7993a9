import type { ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import type { MachineService } from "../../../gen/metal/api/v1/machine_pb.js";
import { callerOf } from "../../auth/context.js";
import { containerFromRow, toProtoEvents, toProtoMachine } from "../../convert/machine.js";
import { bootDeviceFromProto, powerActionFromProto, toTenantBmcCommand, toTenantBmcState } from "../../convert/tenant-bmc.js";
import { projectScope } from "../../domain/project-scope.js";
import type { Logger } from "../../logger.js";
import type { MachineRow } from "../../repositories/machine-repository.js";
import { machineRepository as machines } from "../../repositories/machine-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import { tenantMachineRepository as tenantMachines } from "../../repositories/tenant/machine-repository.js";
import type { WatchHub } from "../../sessions/watch/hub.js";
import { type AllocationDeps, allocateMachine } from "../../usecases/machines/allocation.js";
import { consolePassword, freeMachine, reinstallMachine, updateMachine } from "../../usecases/machines/lifecycle.js";
import { queueTenantBmcCommand, tenantBmcView } from "../../usecases/machines/tenant-bmc.js";
import { machineRef, validateConsolePasswordRequest, validateMachineCreate, validateMachineReinstall, validateMachineUpdate } from "../../validate/machine.js";
import { validateMachineWatch } from "../../validate/machine-watch.js";

/** Tenants allocate machines and see the ones allocated to their project. */
export function createMachineService(deps: AllocationDeps & { log: Logger; watch?: WatchHub }): ServiceImpl<typeof MachineService> {
  const { db } = deps;
  /** The machine as a response, with its events as they are now. */
  const withEvents = async (row: MachineRow) => {
    const events = await machines.eventsOf(db, row.id);
    return toProtoMachine(row, events ? containerFromRow(events) : undefined);
  };
  return {
    async get(req) {
      machineRef(req).check();
      const { machine, events } = await tenantMachines.get(db, projectScope(req.project), req.id.toLowerCase());
      return { machine: toProtoMachine(machine, events ? containerFromRow(events) : undefined) };
    },
    async list(req) {
      const page = await tenantMachines.list(db, projectScope(req.project), pageRequest(req.paging));
      return { machines: page.items.map((m) => toProtoMachine(m.machine, m.events ? containerFromRow(m.events) : undefined)), nextPageToken: page.nextPageToken };
    },
    async delete(req) {
      machineRef(req).check();
      return { machine: await withEvents(await freeMachine(db, projectScope(req.project), req.id.toLowerCase(), deps.bus, deps.events)) };
    },
    async create(req, ctx) {
      validateMachineCreate(req);
      const { machine, events } = await allocateMachine(deps, projectScope(req.project), req, callerOf(ctx).subject);
      return { machine: toProtoMachine(machine, events ? containerFromRow(events) : undefined) };
    },
    async update(req) {
      validateMachineUpdate(req);
      const row = await updateMachine(db, projectScope(req.project), req.id.toLowerCase(), Number(req.version), {
        description: req.description,
        tags: req.tags?.values,
        sshKeys: req.sshKeys?.values,
      });
      return { machine: await withEvents(row) };
    },
    async reinstall(req) {
      validateMachineReinstall(req);
      return { machine: await withEvents(await reinstallMachine(db, projectScope(req.project), req.id.toLowerCase(), req.image, deps.bus)) };
    },
    async consolePassword(req, ctx) {
      validateConsolePasswordRequest(req);
      const password = await consolePassword(db, projectScope(req.project), req.id.toLowerCase());
      // Who looked at a console password, and why, is kept in the log (as the original does).
      deps.log.info({ audit: "console-password", machine: req.id.toLowerCase(), project: req.project, subject: callerOf(ctx).subject, reason: req.reason }, "console password read");
      return { consolePassword: password };
    },
    async events(req) {
      machineRef(req).check();
      const { events } = await tenantMachines.get(db, projectScope(req.project), req.id.toLowerCase());
      return { events: toProtoEvents(events ? containerFromRow(events) : undefined) };
    },
    async power(req) {
      const v = machineRef(req);
      const command = powerActionFromProto(req.action);
      if (!command) v.add("action", "must be on, off, cycle or reset");
      v.check();
      return { command: toTenantBmcCommand(await queueTenantBmcCommand(db, projectScope(req.project), req.id.toLowerCase(), command!, deps.bus)) };
    },
    async bootDevice(req) {
      const v = machineRef(req);
      const command = bootDeviceFromProto(req.device);
      if (!command) v.add("device", "must be pxe, disk or bios");
      v.check();
      return { command: toTenantBmcCommand(await queueTenantBmcCommand(db, projectScope(req.project), req.id.toLowerCase(), command!, deps.bus)) };
    },
    async getBmc(req) {
      machineRef(req).check();
      const { bmc, commands } = await tenantBmcView(db, projectScope(req.project), req.id.toLowerCase());
      return { bmc: bmc ? toTenantBmcState(bmc) : undefined, commands: commands.map(toTenantBmcCommand) };
    },
    async *watch(req, ctx) {
      const spec = validateMachineWatch(req, { kind: "tenant", scope: projectScope(req.project) });
      if (!deps.watch) throw new ConnectError("watch is not served here", Code.Unimplemented);
      for await (const message of deps.watch.watch(spec, ctx.signal)) yield { message };
    },
  };
}
