import { createHash } from "node:crypto";
import ssh2 from "ssh2";
import { AdminRole, effectiveProjectRole, type Principal, ProjectRole } from "../domain/roles.js";

/** What the console knows about a machine when someone asks for its console. */
export interface ConsoleMachine {
  id: string;
  partition: string | null;
  allocation: { uuid: string; project: string; role: "machine" | "firewall"; sshKeys: readonly string[]; createdAt: Date } | null;
}

/** The token sent in LC_METAL_TOKEN: none, one that verified, or one that did not (with the reason). */
export type PresentedToken = { kind: "none" } | { kind: "valid"; principal: Principal } | { kind: "invalid"; reason: string };

export type ConsoleDecision =
  | {
      allow: true;
      admin: boolean;
      partition: string;
      allocationUuid: string | undefined;
      /**
       * Console output produced before this is withheld: the start of the
       * machine's current allocation, so that nobody, operator admins
       * included, sees an earlier tenant's session on it. Undefined on a free
       * machine (operator admins only): everything is shown.
       */
      outputSince: Date | undefined;
    }
  | { allow: false; message: string };

export const TOKEN_ENV = "LC_METAL_TOKEN";

/** The key blob of an OpenSSH public key line, base64, or undefined when it is not one. */
export function keyBlob(line: string): string | undefined {
  const k = ssh2.utils.parseKey(line.trim());
  if (k instanceof Error) return undefined;
  const key = Array.isArray(k) ? k[0] : k;
  return key?.getPublicSSH().toString("base64");
}

/** "SHA256:…" as ssh-keygen -l prints it, so users can match the message to their key. */
export function fingerprint(blobBase64: string): string {
  return `SHA256:${createHash("sha256").update(Buffer.from(blobBase64, "base64")).digest("base64").replace(/=+$/, "")}`;
}

/** Whether the key (its base64 blob) is one of the allocation's SSH keys, compared without comments. */
export function holdsKey(sshKeys: readonly string[], offeredKeyBlob: string): boolean {
  return sshKeys.some((k) => keyBlob(k) === offeredKeyBlob);
}

/**
 * The one refusal every outsider gets, whether the machine does not exist,
 * is free, or is allocated to someone else: it names only what the user sent
 * (the id as typed and their key), so it tells nothing about the machine.
 */
export function outsiderRefusal(machineId: string, offeredKeyBlob: string): string {
  return (
    `machine "${machineId}" has no console for the SSH key you authenticated with (${fingerprint(offeredKeyBlob)}): ` +
    "the SSH user name must be the id of a machine allocated with this key among its SSH keys " +
    "(pass another key with ssh -i KEY or metalctl machine console -i KEY; a machine's keys are set at allocation with " +
    "--sshpublickey, and its project's editors change them with metalctl machine update --sshpublickey)"
  );
}

/**
 * Who may open a machine's console. Pure: the caller looked up the machine,
 * verified the token and, when the key is one of the allocation's and the
 * token has tenant roles, the project's tenant. Operator admins may open
 * every console (free machines and firewalls too, for debugging) and get
 * precise refusals. Everybody else needs all three of: the machine is
 * allocated as a machine, the SSH key is one of the allocation's, and a token
 * of a member (viewer or more) of the allocation's project. Whoever does not
 * hold one of the allocation's keys is an outsider and learns nothing about
 * the machine: unknown, free and someone else's machines get the same words
 * (outsiderRefusal). Whoever holds one is told exactly what is missing,
 * because they cannot see anything else. Whoever is let in on an allocated
 * machine sees only output produced since the allocation began.
 */
export function decideConsoleAccess(machine: ConsoleMachine | undefined, machineId: string, offeredKeyBlob: string, token: PresentedToken, projectTenant?: string): ConsoleDecision {
  const refuse = (message: string): ConsoleDecision => ({ allow: false, message });
  // Whether a token verifies says nothing about any machine, so it is answered first, alike for every machine.
  if (token.kind === "invalid") return refuse(`the token in ${TOKEN_ENV} was refused: ${token.reason}`);
  const principal = token.kind === "valid" ? token.principal : undefined;
  if (principal?.roles.adminRole === AdminRole.ADMIN) {
    if (!machine) return refuse(`machine "${machineId}" not found (the SSH user name is the machine id)`);
    if (!machine.partition) return refuse(`machine "${machine.id}" belongs to no partition yet, so it has no console`);
    return { allow: true, admin: true, partition: machine.partition, allocationUuid: machine.allocation?.uuid, outputSince: machine.allocation?.createdAt };
  }
  const a = machine?.allocation;
  if (!machine?.partition || !a || !holdsKey(a.sshKeys, offeredKeyBlob)) return refuse(outsiderRefusal(machineId, offeredKeyBlob));
  if (a.role === "firewall") return refuse(`machine "${machine.id}" is a firewall; only operator admins may open a firewall's console`);
  if (!principal) {
    return refuse(`no token: send a token of a member of project "${a.project}" in ${TOKEN_ENV} (ssh -o SendEnv=${TOKEN_ENV}; metalctl machine console does this)`);
  }
  if (effectiveProjectRole(principal.roles, a.project, projectTenant) < ProjectRole.VIEWER) {
    return refuse(`the token of "${principal.subject}" is not one of a member of project "${a.project}", to which machine "${machine.id}" is allocated`);
  }
  return { allow: true, admin: false, partition: machine.partition, allocationUuid: a.uuid, outputSince: a.createdAt };
}
