import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { type BmcReport, mergeBmcReport } from "../../domain/bmc-report.js";
import { machineAdminRepository as admin, machineRepository as machines } from "../../repositories/machine-repository.js";
import { referenceHolds } from "../../repositories/usage-repository.js";

export interface IncomingBmcReport extends BmcReport {
  machineId: string;
  biosVersion: string;
}

/**
 * Stores a batch of BMC reports of one partition in one transaction. A UUID
 * never seen becomes a bare machine record (the BMC is often found before
 * the machine first boots); a machine of another partition is skipped, not
 * moved. Machines are locked in id order, so concurrent batches cannot deadlock.
 */
export async function recordBmcReports(db: DbHandle, partition: string, reports: IncomingBmcReport[]): Promise<{ created: number; updated: number; skipped: string[] }> {
  const byId = new Map(reports.map((r) => [r.machineId.toLowerCase(), r]));
  const ids = [...byId.keys()].sort();
  const now = new Date();
  return inTransaction(db, async (tx) => {
    const existing = new Set((await machines.lockWithEvents(tx, ids)).map((m) => m.machine.id));
    // New bare records may be made: a partition delete must wait for them and count them.
    if (ids.length > 0) await referenceHolds.partition(tx, partition);
    await machines.ensure(tx, ids, partition);
    let created = 0;
    let updated = 0;
    const skipped: string[] = [];
    for (const { machine } of await machines.lockWithEvents(tx, ids)) {
      if (machine.partitionId && machine.partitionId !== partition) {
        skipped.push(machine.id);
        continue;
      }
      const r = byId.get(machine.id)!;
      const bios = r.biosVersion ? { vendor: machine.bios?.vendor ?? "", date: machine.bios?.date ?? "", version: r.biosVersion } : machine.bios;
      await admin.saveBmc(tx, machine.id, mergeBmcReport(machine.bmc, r, now), bios);
      if (existing.has(machine.id)) updated++;
      else created++;
    }
    return { created, updated, skipped };
  });
}
