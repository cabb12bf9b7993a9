import { Code, ConnectError } from "@connectrpc/connect";
import type { DbHandle } from "../../db/handle.js";
import { consoleRouteRepository } from "../../repositories/console-route-repository.js";
import { validator } from "../../validate/validator.js";
import type { ConsoleSession, RelayBroker } from "./relay-broker.js";
import type { RemoteConsoles } from "./remote-console.js";

export interface OpenConsoleOptions {
  signal?: AbortSignal;
  /** Output produced before this (the machine's current allocation began) is withheld. */
  outputSince?: Date;
}

/** Opens machines' serial consoles for the SSH front end, wherever the partition's metal-bmc holds its session. */
export interface ConsoleOpener {
  openConsole(partition: string, machineId: string, opts?: OpenConsoleOptions): Promise<ConsoleSession>;
}

export interface ConsoleOpenerDeps {
  db: DbHandle;
  /** This replica's metal-bmc sessions. */
  local: RelayBroker;
  /** Consoles through other replicas; absent: only local consoles (one replica). */
  remote?: RemoteConsoles;
  /** This replica's id in the replica table. */
  replicaId: string;
  /** A replica whose heartbeat is older than this is taken for dead (METAL_REPLICA_TIMEOUT). */
  replicaTimeoutMs: number;
}

/**
 * Local when a metal-bmc of the partition holds its session on this replica
 * (no hop); otherwise through the replica that holds one, found in the
 * daemon-session table; FailedPrecondition when no replica holds one. Access
 * was decided by the caller: the other replica trusts this one's credential.
 */
export function createConsoleOpener(deps: ConsoleOpenerDeps): ConsoleOpener {
  return {
    async openConsole(partition, machineId, opts = {}) {
      validator().id("partition", partition).uuid("machine_id", machineId).check();
      if (deps.local.agentsOf(partition).length > 0 || !deps.remote) return deps.local.openConsole(partition, machineId, opts);
      // This replica's own rows may lag its registry (stamped in batches); its sessions were asked above.
      const routes = (await consoleRouteRepository.routesOf(deps.db, partition, deps.replicaTimeoutMs, deps.replicaId)).filter((r) => r.replicaId !== deps.replicaId);
      if (routes.length === 0) throw new ConnectError(`no metal-bmc of partition "${partition}" is connected to this replica or to any other replica of the control plane`, Code.FailedPrecondition);
      let last: unknown;
      for (const route of routes) {
        try {
          return await deps.remote.open({ id: route.replicaId, address: route.address }, partition, machineId.toLowerCase(), opts);
        } catch (err) {
          // Only a replica that could not be reached is worth passing over (it may have died since its last heartbeat);
          // any answer it gave is the console's answer.
          if (ConnectError.from(err).code !== Code.Unavailable) throw err;
          last = err;
        }
      }
      throw last;
    },
  };
}
