import type { ServiceImpl } from "@connectrpc/connect";
import { type ConnectionService, DaemonKind } from "../../../gen/metal/admin/v1/connection_pb.js";
import { daemonConnectionToProto, daemonKindFromProto } from "../../convert/connection.js";
import type { ConnectionRegistry } from "../../sessions/connections.js";
import { validator } from "../../validate/validator.js";

export interface AdminConnectionServiceDeps {
  /** This replica's registry; it reads every replica's sessions from the daemon_sessions table. */
  connections: ConnectionRegistry;
}

/** Operators see which metal-core and metal-bmc sessions the replicas hold, all of them. */
export function createAdminConnectionService({ connections }: AdminConnectionServiceDeps): ServiceImpl<typeof ConnectionService> {
  return {
    async list(req) {
      const v = validator();
      if (req.partition !== undefined) v.id("partition", req.partition);
      // UNSPECIFIED is "any kind", so only unknown numbers are refused.
      if (req.kind !== undefined && req.kind !== DaemonKind.UNSPECIFIED) v.enumValue("kind", req.kind, DaemonKind);
      v.check();
      const found = await connections.listEverywhere({ kind: daemonKindFromProto(req.kind), partition: req.partition });
      return { connections: found.map(daemonConnectionToProto) };
    },
  };
}
