import { createClient, type Transport } from "@connectrpc/connect";
import { sleep } from "../../client/backoff.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { type Machine, ProvisioningEventType } from "../../gen/metal/api/v1/machine_pb.js";

/** How many of the lab's machines are ready: free ones in the waiting pool, allocated ones phoned home. */
export interface MachinesUp {
  total: number;
  waiting: number;
  allocated: number;
}

export function countUp(machines: readonly Machine[], ids: ReadonlySet<string>): MachinesUp {
  let waiting = 0;
  let allocated = 0;
  for (const m of machines) {
    if (!ids.has(m.id)) continue;
    // What the table shows (the last event) and what allocation needs (a place in the waiting pool) must both say so.
    const last = m.events?.log[0]?.type;
    if (!m.allocation && m.waiting && last === ProvisioningEventType.WAITING) waiting++;
    else if (m.allocation && last === ProvisioningEventType.PHONED_HOME) allocated++;
  }
  return { total: ids.size, waiting, allocated };
}

export const describeUp = (u: MachinesUp): string =>
  u.allocated === 0
    ? `${u.waiting}/${u.total} machines waiting for allocation`
    : `${u.waiting + u.allocated}/${u.total} machines up (${u.waiting} waiting for allocation, ${u.allocated} allocated and phoned home)`;

/**
 * Prints a line each time the count of ready machines changes, until all of
 * them are (then a last line saying so) or `signal` ends it. It asks the
 * control plane, so the line tells what `metalctl machine list` shows.
 */
export async function reportMachinesUp(opts: {
  transport: Transport;
  partition: string;
  ids: ReadonlySet<string>;
  print: (line: string) => void;
  startedAt: number;
  intervalMs: number;
  signal: AbortSignal;
}): Promise<void> {
  const admin = createClient(AdminMachineService, opts.transport);
  let last = "";
  while (!opts.signal.aborted) {
    try {
      const machines: Machine[] = [];
      let pageToken = "";
      do {
        const page = await admin.list({ partition: opts.partition, paging: { limit: 1000, pageToken } }, { signal: opts.signal });
        machines.push(...page.machines);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      const up = countUp(machines, opts.ids);
      const line = describeUp(up);
      if (up.waiting + up.allocated === up.total) {
        const secs = ((Date.now() - opts.startedAt) / 1000).toFixed(1);
        opts.print(`all ${up.total} machines ready, ${secs} s after start: ${line}`);
        return;
      }
      if (line !== last) opts.print(line);
      last = line;
    } catch {
      // The control plane is restarting or stopping: ask again.
    }
    await sleep(opts.intervalMs, opts.signal).catch(() => {});
  }
}
