import { AdminRole, effectiveProjectRole, levelName, type Principal, ProjectRole } from "../domain/roles.js";
import type { ConsoleMachine } from "./access.js";

/** Why a browser console was refused, as the Connect code the handler answers with. */
export type BrowserRefusalCode = "not_found" | "permission_denied" | "failed_precondition";

export type BrowserConsoleDecision =
  | {
      allow: true;
      admin: boolean;
      partition: string;
      /** The allocation the console is bound to: it ends when the machine is freed or allocated anew. Undefined on a free machine (admins only). */
      allocationUuid: string | undefined;
      /** Output produced before this (the allocation's start) is withheld, as over SSH; undefined: everything. */
      outputSince: Date | undefined;
    }
  | { allow: false; code: BrowserRefusalCode; message: string };

/** The role a browser console takes in the machine's project: whoever has it can set the allocation's SSH keys. */
export const BROWSER_CONSOLE_ROLE = ProjectRole.EDITOR;

/**
 * The one refusal every outsider gets, whether the machine does not exist,
 * is free, or is allocated to another project: it names only what the
 * caller sent, so it tells nothing about the machine.
 */
export function browserOutsiderRefusal(machineId: string, project: string): string {
  return `machine "${machineId}" not found in project "${project}"`;
}

/**
 * Who may open a machine's console in the browser: the SSH console's rules
 * (decideConsoleAccess) with the SSH key replaced by the project role that
 * can set the allocation's keys. Pure: the caller looked up the machine
 * and, for tokens with tenant roles, the project's tenant.
 *
 * Operator admins may open every console (free machines and firewalls too)
 * and get precise refusals. Everybody else needs a token of an editor (or
 * owner) of the project they name, and the machine allocated as a machine
 * to that project. A viewer, who over SSH needs one of the allocation's
 * keys as well, is refused: the browser has no key to offer. Unknown, free
 * and other projects' machines get the same words (browserOutsiderRefusal).
 * Whoever is let in on an allocated machine sees only output produced since
 * the allocation began.
 */
export function decideBrowserConsoleAccess(machine: ConsoleMachine | undefined, machineId: string, project: string, principal: Principal, projectTenant?: string): BrowserConsoleDecision {
  const refuse = (code: BrowserRefusalCode, message: string): BrowserConsoleDecision => ({ allow: false, code, message });
  if (principal.roles.adminRole === AdminRole.ADMIN) {
    if (!machine) return refuse("not_found", `machine "${machineId}" not found`);
    if (!machine.partition) return refuse("failed_precondition", `machine "${machine.id}" belongs to no partition yet, so it has no console`);
    return { allow: true, admin: true, partition: machine.partition, allocationUuid: machine.allocation?.uuid, outputSince: machine.allocation?.createdAt };
  }
  // Answered from the token and the project the caller named alone, alike for every machine (the auth interceptor says the same first).
  if (principal.machine || effectiveProjectRole(principal.roles, project, projectTenant) < BROWSER_CONSOLE_ROLE) {
    return refuse(
      "permission_denied",
      `permission denied: a console in the browser needs project ${levelName(BROWSER_CONSOLE_ROLE)} of "${project}" (viewers use the SSH console with one of the machine's SSH keys)`,
    );
  }
  const a = machine?.allocation;
  if (!machine?.partition || !a || a.project !== project) return refuse("not_found", browserOutsiderRefusal(machineId, project));
  if (a.role === "firewall") return refuse("permission_denied", `permission denied: machine "${machine.id}" is a firewall; only operator admins may open a firewall's console`);
  return { allow: true, admin: false, partition: machine.partition, allocationUuid: a.uuid, outputSince: a.createdAt };
}
