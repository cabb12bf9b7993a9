import { bmcCommandsTopic, type FanoutBus } from "../../bus/fanout.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import type { BmcCommandRow, StoredBmc } from "../../db/schema/index.js";
import type { BmcCommandName } from "../../domain/bmc-command.js";
import type { ProjectScope } from "../../domain/project-scope.js";
import { TENANT_COMMANDS_PER_WINDOW, TENANT_SHARED_BMC_PROBLEM, tenantCommandFloodProblem, tenantCommandProblem } from "../../domain/tenant-bmc-command.js";
import { exhausted, failedPrecondition } from "../../errors.js";
import { bmcCommandRepository as bmcCommands } from "../../repositories/bmc-command-repository.js";
import { machineLifecycleRepository as lifecycle } from "../../repositories/machine-repository.js";
import { tenantMachineRepository as tenantMachines } from "../../repositories/tenant/machine-repository.js";
import { queueBmcCommandOnLocked } from "./lifecycle.js";

/** How many of a machine's newest commands a tenant sees. */
export const TENANT_RECENT_COMMANDS = 20;

/**
 * A project editor's power or boot-device command for an allocated machine
 * of the project: queued exactly as an operator's (durable row, Planned
 * Reboot recorded, metal-bmc woken), after the tenant rules. The machine is
 * locked first, so concurrent calls count each other's commands. Another
 * project's machine, a free one and an unknown id are the same NotFound.
 */
export async function queueTenantBmcCommand(db: DbHandle, scope: ProjectScope, id: string, command: BmcCommandName, bus?: FanoutBus, now = new Date()): Promise<BmcCommandRow> {
  const queued = await inTransaction(db, async (tx) => {
    const m = await tenantMachines.lockAllocated(tx, scope, id);
    const problem = tenantCommandProblem({ id, state: m.state, installing: !m.allocation.succeeded || m.allocation.reinstall === true }, command);
    if (problem) throw failedPrecondition(problem);
    const recent = await lifecycle.recentCommands(tx, id, TENANT_COMMANDS_PER_WINDOW);
    const flood = tenantCommandFloodProblem(
      id,
      recent.map((c) => c.createdAt),
      now,
    );
    if (flood) throw exhausted(flood);
    // Checked again when metal-bmc is sent the command; refused here so the tenant learns at once.
    const { others } = await bmcCommands.machinesSharingBmcOf(tx, id);
    if (others.length > 0) throw failedPrecondition(TENANT_SHARED_BMC_PROBLEM);
    return (await queueBmcCommandOnLocked(tx, m, command, "")).command;
  });
  bus?.publish(bmcCommandsTopic(queued.partitionId));
  return queued;
}

/** What a project member may read of an allocated machine's BMC: the last report (never address or credentials, see convert) and the recent commands. */
export async function tenantBmcView(db: DbHandle, scope: ProjectScope, id: string): Promise<{ bmc: StoredBmc | null; commands: BmcCommandRow[] }> {
  const { machine } = await tenantMachines.get(db, scope, id);
  return { bmc: machine.bmc, commands: await lifecycle.recentCommands(db, id, TENANT_RECENT_COMMANDS) };
}
