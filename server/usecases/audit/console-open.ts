import { randomBytes } from "node:crypto";
import type { DbHandle } from "../../db/handle.js";
import type { Principal } from "../../domain/roles.js";
import type { Logger } from "../../logger.js";
import { auditTrail, errorMessageOf, newEntry, outcomeOf } from "./entries.js";

/** The SSH console's entries carry this method name (browser consoles carry their RPC's). */
export const SSH_CONSOLE_OPEN = "ssh-console/Open";

/** One SSH console asked for: who (when their token verified), which machine, and how it went. */
export interface ConsoleOpen {
  principal: Principal | undefined;
  machineId: string;
  /** The project of the machine's allocation, when it has one: its members see the entry. */
  project: string | undefined;
  /** Fingerprint of the SSH key offered (never the key's owner's secret: a public key's hash). */
  keyFingerprint: string;
  /** Undefined when the console opened; else the Connect code and the sentence the client was told. */
  refusal?: { code: number; message: string };
}

/**
 * Records an SSH console open or refusal in its own transaction (nothing in
 * the metal database changes with it). Refusals of callers without a valid
 * token are not recorded: anyone on the network can cause those, and the
 * trail must not be theirs to fill; the log has them.
 */
export async function recordConsoleOpen(db: DbHandle, log: Logger, open: ConsoleOpen): Promise<void> {
  if (!open.principal && open.refusal) return;
  const entry = newEntry({
    method: SSH_CONSOLE_OPEN,
    principal: open.principal,
    // The SSH layer has no request id of its own: one for this entry, so that the log line and the entry can be matched.
    requestId: randomBytes(8).toString("hex"),
    request: { machineId: open.machineId, key: open.keyFingerprint, ...(open.project ? { project: open.project } : {}) },
  });
  const ended = open.refusal ? { ...entry, outcome: outcomeOf(open.refusal.code), errorMessage: errorMessageOf(open.refusal.code, open.refusal.message) } : entry;
  await auditTrail.record(db, ended).catch((err: unknown) => log.error({ err, machineId: open.machineId }, "writing the console's audit entry failed"));
}
