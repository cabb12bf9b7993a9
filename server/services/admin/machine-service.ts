import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { MachineService } from "../../../gen/metal/admin/v1/machine_pb.js";
import { AdminRole } from "../../../gen/metal/api/v1/common_pb.js";
import { MachineRole } from "../../../gen/metal/api/v1/machine_pb.js";
import { callerOf, kRequestId } from "../../auth/context.js";
import type { FanoutBus } from "../../bus/fanout.js";
import { bmcCommandFromProto, containerFromRow, machineRoleFromProto, machineStateFromProto, toOperatorBmcCredentials, toOperatorMachine, toProtoCommand, toProtoMachine } from "../../convert/machine.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { noteProject } from "../../db/transaction-hook.js";
import { sharedBmcAddressProblem } from "../../domain/bmc-command.js";
import { machineIssues } from "../../domain/machine-issues.js";
import { failedPrecondition } from "../../errors.js";
import type { Logger } from "../../logger.js";
import { bmcCommandRepository as bmcCommands } from "../../repositories/bmc-command-repository.js";
import type { MachineRow } from "../../repositories/machine-repository.js";
import { machineAdminRepository as admin, machineLifecycleRepository as lifecycle, machineRepository as machineRepo } from "../../repositories/machine-repository.js";
import { pageRequest } from "../../repositories/paging.js";
import type { WatchHub } from "../../sessions/watch/hub.js";
import { queueBmcCommand } from "../../usecases/machines/lifecycle.js";
import { deleteMachineRecord } from "../../usecases/machines/record-deletion.js";
import { validateMachineWatch } from "../../validate/machine-watch.js";
import { validator } from "../../validate/validator.js";

const RECENT_COMMANDS = 100;

/**
 * Whether the caller may read machine secrets (BMC logins, tenants' user
 * data): operator admins only. The methods themselves are open to operator
 * viewers (their proto permission); this is the one place that decides the
 * secret part of their answers.
 */
const mayReadSecrets = (ctx: HandlerContext): boolean => callerOf(ctx).roles.adminRole >= AdminRole.ADMIN;

export interface AdminMachineServiceDeps {
  db: DbHandle;
  bus?: FanoutBus;
  /** Where each read of BMC credentials is recorded (who, which machine, request id; never the secret). */
  log?: Logger;
  /** This replica's Watch hub (MachineService.Watch). */
  watch?: WatchHub;
}

export function createAdminMachineService({ db, bus, log, watch }: AdminMachineServiceDeps): ServiceImpl<typeof MachineService> {
  /** The machine as a response, with its events as they are now. */
  const withEvents = async (row: MachineRow) => {
    const events = await machineRepo.eventsOf(db, row.id);
    return toProtoMachine(row, events ? containerFromRow(events) : undefined);
  };
  return {
    async get(req, ctx) {
      validator().uuid("id", req.id).check();
      const { machine, events } = await machineRepo.get(db, req.id.toLowerCase());
      const secrets = mayReadSecrets(ctx);
      // Only this operator method hands out the BMC login; no tenant message has a field for it.
      const bmcCredentials = toOperatorBmcCredentials(machine, secrets);
      if (bmcCredentials) {
        const caller = callerOf(ctx);
        // The audit record of a credential read, until there is an audit table: who, which machine, which request.
        log?.info({ audit: "bmc-credentials-read", machine: machine.id, subject: caller.subject, tokenId: caller.tokenId, requestId: ctx.values.get(kRequestId) }, "BMC credentials read");
      }
      return { machine: toOperatorMachine(machine, events ? containerFromRow(events) : undefined, secrets), bmcCredentials };
    },
    async list(req, ctx) {
      const v = validator();
      for (const [path, value] of [
        ["partition", req.partition],
        ["size", req.size],
        ["rack", req.rack],
        ["project", req.project],
      ] as const) {
        if (value !== undefined) v.id(path, value, { max: 128 });
      }
      const role = req.role === undefined ? undefined : req.role === MachineRole.UNSPECIFIED ? undefined : machineRoleFromProto(req.role);
      if (req.role !== undefined && req.role !== MachineRole.UNSPECIFIED && !role) v.add("role", "must be machine or firewall");
      v.check();
      const secrets = mayReadSecrets(ctx);
      const page = await machineRepo.list(db, { ...req, role }, pageRequest(req.paging));
      return {
        machines: page.items.map((m) => toOperatorMachine(m.machine, m.events ? containerFromRow(m.events) : undefined, secrets)),
        nextPageToken: page.nextPageToken,
      };
    },
    async setState(req) {
      const v = validator().uuid("id", req.id).text("reason", req.reason, 256);
      const state = machineStateFromProto(req.state);
      if (!state) v.add("state", "must be available, tainted or locked");
      else if (state !== "available" && req.reason.trim() === "") v.add("reason", "is required to taint or lock a machine");
      v.check();
      const row = await inTransaction(db, async (tx) => {
        const changed = await admin.setState(tx, req.id.toLowerCase(), state!, state === "available" ? "" : req.reason);
        // A lock or taint of an allocated machine shows in its project's audit trail.
        noteProject(changed.allocation?.project);
        return changed;
      });
      return { machine: await withEvents(row) };
    },
    async delete(req) {
      validator().uuid("id", req.id).check();
      const id = req.id.toLowerCase();
      const removed = await deleteMachineRecord(db, id);
      return { machine: toProtoMachine(removed.machine, removed.events ? containerFromRow(removed.events) : undefined) };
    },
    async issues(req) {
      if (req.partition !== undefined) validator().id("partition", req.partition).check();
      const page = await machineRepo.list(db, { partition: req.partition }, pageRequest(req.paging));
      const shared = await admin.sharedBmcAddresses(
        db,
        page.items.map((m) => m.machine.bmc?.address ?? ""),
      );
      const now = new Date();
      const found = page.items
        .map(({ machine: m, events }) => ({
          machineId: m.id,
          issues: machineIssues(
            {
              partition: m.partitionId ?? "",
              allocated: m.allocation !== null,
              events: events ? containerFromRow(events) : undefined,
              bmc: m.bmc ? { mac: m.bmc.mac, address: m.bmc.address, lastUpdated: new Date(m.bmc.lastUpdated) } : undefined,
              bmcAddressShared: m.bmc !== null && shared.has(m.bmc.address),
            },
            now,
          ),
        }))
        .filter((m) => m.issues.length > 0);
      return { machines: found, nextPageToken: page.nextPageToken };
    },
    async bMCCommand(req) {
      const v = validator().uuid("id", req.id).text("description", req.description, 256);
      const command = bmcCommandFromProto(req.command);
      if (!command) v.add("command", "must be one of the BMC commands");
      v.check();
      const id = req.id.toLowerCase();
      // Checked again when the command is dispatched (the address may become shared meanwhile); here the operator learns why at once.
      const { address, others } = await bmcCommands.machinesSharingBmcOf(db, id);
      const problem = sharedBmcAddressProblem(id, address, others);
      if (problem) throw failedPrecondition(problem);
      const out = await queueBmcCommand(db, id, command!, req.description, bus);
      return { command: toProtoCommand(out.command), machine: await withEvents(out.machine) };
    },
    async commands(req) {
      validator().uuid("id", req.id).check();
      const id = req.id.toLowerCase();
      await machineRepo.get(db, id);
      return { commands: (await lifecycle.recentCommands(db, id, RECENT_COMMANDS)).map(toProtoCommand) };
    },
    async *watch(req, ctx) {
      const spec = validateMachineWatch(req, { kind: "operator", secrets: mayReadSecrets(ctx) });
      if (!watch) throw new ConnectError("watch is not served here", Code.Unimplemented);
      for await (const message of watch.watch(spec, ctx.signal)) yield { message };
    },
  };
}
