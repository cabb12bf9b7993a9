import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import type { BootServiceWaitRequest, BootServiceWaitResponseSchema } from "../../../gen/metal/infra/v1/boot_pb.js";
import { allocationTopic, type FanoutBus } from "../../bus/fanout.js";
import { toProtoAllocation } from "../../convert/machine.js";
import type { DbHandle } from "../../db/handle.js";
import { failedPrecondition } from "../../errors.js";
import { machineRepository as machines } from "../../repositories/machine-repository.js";
import { validator } from "../../validate/validator.js";
import { DaemonSession } from "../daemon-session.js";
import type { WaitingRegistry } from "./waiting.js";

/** How a Wait stream paces itself; shorter in tests. */
export interface WaitTiming {
  /** A keepalive is sent after this much silence. */
  keepaliveMs: number;
  /** The waiting lease lasts this long and is renewed at a third of it. */
  leaseMs: number;
  /** The database is re-read this often, in case a bus message was lost. */
  recheckMs: number;
}

export const DEFAULT_WAIT_TIMING: WaitTiming = { keepaliveMs: 5_000, leaseMs: 60_000, recheckMs: 60_000 };

type Response = MessageInitShape<typeof BootServiceWaitResponseSchema>;

export interface WaitSessionDeps {
  db: DbHandle;
  bus: FanoutBus;
  /** The machines waiting on this replica; renews their leases together. */
  waiting: WaitingRegistry;
  timing?: WaitTiming;
}

/**
 * The machine's allocation as Wait delivers it, or undefined while it has
 * none. With `partition`, first checks that the machine may wait there at
 * all. A function of its own so that the machine row is garbage as soon as it
 * is read: a Wait stream is open for hours, thousands at once, and keeps only
 * what its generator's scope holds.
 */
async function allocationToDeliver(db: DbHandle, id: string, partition?: string) {
  const { machine } = await machines.get(db, id);
  if (partition !== undefined) {
    if (machine.partitionId !== partition) throw failedPrecondition(`machine "${id}" is not in partition "${partition}"`);
    // Waiting makes a machine allocatable; one that has not registered has no size or cabling to be allocated by.
    if (!machine.hardware || !machine.sizeId) throw failedPrecondition(`machine "${id}" has not registered its hardware; Register before Wait`);
  }
  return machine.allocation ? toProtoAllocation(machine.allocation) : undefined;
}

/**
 * metal-hammer's Wait stream: keeps the machine allocatable while it is open
 * (a lease the waiting registry renews as long as it is), and delivers the
 * allocation the moment it commits: the allocating replica publishes on the
 * bus, this session wakes and re-reads the machine. It listens before the
 * first read, so no wake-up can fall in between; the registry's periodic
 * re-check wakes it when a bus message was lost.
 */
export function createWaitSession({ db, bus, waiting, timing = DEFAULT_WAIT_TIMING }: WaitSessionDeps) {
  return async function* wait(req: BootServiceWaitRequest, ctx: HandlerContext): AsyncGenerator<Response> {
    validator().id("partition", req.partition).uuid("machine_id", req.machineId).check();
    const id = req.machineId.toLowerCase();
    const s = new DaemonSession(ctx.signal);
    s.listen(bus, allocationTopic(id));
    let leave: (() => Promise<void>) | undefined;
    try {
      let allocation = await allocationToDeliver(db, id, req.partition);
      if (allocation) {
        yield { allocation };
        return;
      }
      // From here the machine is waiting; the registry renews its lease and re-checks it with all others.
      leave = await waiting.add(id, s.wake);
      // Allocated between the first read and joining the registry: the bus message may have gone before we listened.
      allocation = await allocationToDeliver(db, id);
      if (allocation) {
        yield { allocation };
        return;
      }
      // Not allocated now: say so at once. A hammer that only probes whether its machine is
      // allocated (before it touches a disk) takes the first keepalive as "free", so it need
      // not sit out its probe timeout; a waiting hammer ignores keepalives.
      yield {};
      while (!s.ended) {
        if (await s.sleep(timing.keepaliveMs)) {
          allocation = await allocationToDeliver(db, id);
          if (allocation) {
            yield { allocation };
            return;
          }
        } else if (!s.ended) {
          yield {};
        }
      }
    } finally {
      s.close();
      await leave?.().catch(() => {});
    }
  };
}
