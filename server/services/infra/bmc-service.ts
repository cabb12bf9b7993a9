import type { ServiceImpl } from "@connectrpc/connect";
import type { BMCService } from "../../../gen/metal/infra/v1/bmc_pb.js";
import type { FanoutBus } from "../../bus/fanout.js";
import type { DbHandle } from "../../db/handle.js";
import type { BusinessEvents } from "../../metrics/events.js";
import { partitionRepository as partitions } from "../../repositories/partition-repository.js";
import { type BmcSessionTiming, createBmcSession, reportProblems } from "../../sessions/bmc/session.js";
import type { ConnectionRegistry } from "../../sessions/connections.js";
import type { RelayBroker } from "../../sessions/console/relay-broker.js";
import { recordBmcReports } from "../../usecases/machines/bmc-reports.js";
import { validator } from "../../validate/validator.js";

export interface BmcServiceDeps {
  db: DbHandle;
  /** Without a bus, sessions learn of new commands only on the agent's heartbeats. */
  bus?: FanoutBus;
  /** Without a registry, sessions are not listed (and not replaced on reconnect). */
  connections?: ConnectionRegistry;
  sessionTiming?: BmcSessionTiming;
  /** The app's console relay broker: sessions offer to open relays through it. */
  consoles?: RelayBroker;
  /** Counts settled commands for /metrics. */
  events?: BusinessEvents;
}

/** metal-bmc reports what it reads from the partition's BMCs and carries out their commands. */
export function createBmcService({ db, bus, connections, sessionTiming, consoles, events }: BmcServiceDeps): ServiceImpl<typeof BMCService> {
  return {
    async report(req) {
      const v = validator().id("partition", req.partition);
      reportProblems(v, req.reports);
      v.check();
      await partitions.get(db, req.partition);
      const out = await recordBmcReports(db, req.partition, req.reports);
      return out;
    },
    session: createBmcSession({ db, bus, connections, timing: sessionTiming, consoles, events }),
  };
}
