import { inTransaction } from "../db/database.js";
import type { Logger } from "../logger.js";
import { machineRepository as machines } from "../repositories/machine-repository.js";
import { pendingGrantCapRepository as pendingCaps } from "../repositories/pending-grant-cap-repository.js";
import type { TenancyDeps } from "../usecases/tenancy/masterdata.js";
import { capPendingGrant } from "../usecases/tenancy/members.js";

const GRANT_CAP_SWEEP_LOCK = 7112;

/** How often the sweep runs (every replica's timer; one replica at a time does the work). */
export const GRANT_CAP_SWEEP_INTERVAL_MS = 60_000;

/** Younger rows belong to removals still under way: they finish (or fail) on their own first. */
export const GRANT_CAP_SETTLE_MS = 60_000;

const BATCH = 100;

/**
 * Caps the tokens of memberships whose removal did not get to cap them
 * (usecases/tenancy/members.ts removeMember): each member at their current
 * role in masterdata. A row that fails (masterdata away) stays for the next
 * round. Returns the rows done, or undefined when another replica sweeps.
 */
export async function runGrantCapSweep(deps: TenancyDeps, log: Logger, now = new Date()): Promise<number | undefined> {
  return inTransaction(deps.db, async (tx) => {
    if (!(await machines.tryJobLock(tx, GRANT_CAP_SWEEP_LOCK))) return undefined;
    let done = 0;
    for (const row of await pendingCaps.due(tx, new Date(now.getTime() - GRANT_CAP_SETTLE_MS), BATCH)) {
      const key = { subject: row.subject, kind: row.kind === "tenant" ? ("tenant" as const) : ("project" as const), targetId: row.targetId };
      try {
        await capPendingGrant(deps, key);
        await pendingCaps.delete(deps.db, [row.id]);
        done++;
      } catch (err) {
        log.warn({ err, member: key.subject, [key.kind]: key.targetId }, "capping the tokens of an ended membership failed; tried again in the next sweep");
      }
    }
    return done;
  });
}
