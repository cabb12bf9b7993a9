import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { DaemonKind } from "../../gen/metal/admin/v1/connection_pb.js";
import type { DaemonConnection, DaemonKind as Kind } from "../sessions/connections.js";

const fromProtoKinds = new Map<DaemonKind, Kind>([
  [DaemonKind.SWITCH, "switch"],
  [DaemonKind.BMC, "bmc"],
]);
const toProtoKinds: Record<Kind, DaemonKind> = { switch: DaemonKind.SWITCH, bmc: DaemonKind.BMC };

/** A filter's kind; UNSPECIFIED (and absent) is any kind. */
export const daemonKindFromProto = (k: DaemonKind | undefined): Kind | undefined => (k === undefined ? undefined : fromProtoKinds.get(k));

export const daemonConnectionToProto = (c: DaemonConnection) => ({
  kind: toProtoKinds[c.kind],
  id: c.id,
  partition: c.partition,
  replica: c.replica,
  replicaAddress: c.replicaAddress ?? "",
  connectedAt: timestampFromDate(c.connectedAt),
  lastHeartbeat: timestampFromDate(c.lastHeartbeat),
});
