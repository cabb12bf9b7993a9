import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type ConnectionService, DaemonKind } from "../../../gen/metal/admin/v1/connection_pb.js";
import type { ConnectionRegistry, DaemonConnection, DaemonKind as Kind } from "../../sessions/connections.js";
import { validator } from "../../validate/validator.js";

export interface AdminConnectionServiceDeps {
  /** This replica's streams; other replicas' are not visible here (no shared table of connections). */
  connections: ConnectionRegistry;
}

const fromProtoKind = new Map<DaemonKind, Kind>([
  [DaemonKind.SWITCH, "switch"],
  [DaemonKind.BMC, "bmc"],
]);
const toProtoKind: Record<Kind, DaemonKind> = { switch: DaemonKind.SWITCH, bmc: DaemonKind.BMC };

const toProto = (c: DaemonConnection) => ({
  kind: toProtoKind[c.kind],
  id: c.id,
  partition: c.partition,
  replica: c.replica,
  connectedAt: timestampFromDate(c.connectedAt),
  lastHeartbeat: timestampFromDate(c.lastHeartbeat),
});

/** Operators see which metal-core and metal-bmc sessions this replica holds. */
export function createAdminConnectionService({ connections }: AdminConnectionServiceDeps): ServiceImpl<typeof ConnectionService> {
  return {
    list(req) {
      const v = validator();
      if (req.partition !== undefined) v.id("partition", req.partition);
      // UNSPECIFIED is "any kind", so only unknown numbers are refused.
      if (req.kind !== undefined && req.kind !== DaemonKind.UNSPECIFIED) v.enumValue("kind", req.kind, DaemonKind);
      v.check();
      const kind = req.kind === undefined ? undefined : fromProtoKind.get(req.kind);
      return { connections: connections.list({ kind, partition: req.partition }).map(toProto) };
    },
  };
}
