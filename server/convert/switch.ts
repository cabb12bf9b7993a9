import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Switch, SwitchMode, SwitchPortState, SwitchSchema, type SwitchSync, SwitchSyncSchema } from "../../gen/metal/admin/v1/switch_pb.js";
import type { StoredSwitchNic, StoredSwitchSync, SwitchRow } from "../db/schema/index.js";
import { toProtoMeta } from "./meta.js";

const modes: Record<SwitchRow["mode"], SwitchMode> = {
  operational: SwitchMode.OPERATIONAL,
  replace: SwitchMode.REPLACE,
};

/** The stored mode for a proto mode; undefined for UNSPECIFIED or unknown values. */
export const switchModeFromProto = (m: SwitchMode): SwitchRow["mode"] | undefined => (Object.entries(modes) as [SwitchRow["mode"], SwitchMode][]).find(([, v]) => v === m)?.[0];

const portStates: Record<NonNullable<StoredSwitchNic["actual"]>, SwitchPortState> = {
  up: SwitchPortState.UP,
  down: SwitchPortState.DOWN,
  unknown: SwitchPortState.UNKNOWN,
};

/** The desired state an operator may ask for; undefined for anything but UP and DOWN. */
export function desiredPortStateFromProto(s: SwitchPortState): NonNullable<StoredSwitchNic["desired"]> | undefined {
  return s === SwitchPortState.UP ? "up" : s === SwitchPortState.DOWN ? "down" : undefined;
}

function toProtoSync(s: StoredSwitchSync | null): SwitchSync | undefined {
  if (!s) return undefined;
  return create(SwitchSyncSchema, { time: timestampFromDate(new Date(s.time)), duration: durationFromMs(s.durationMs), error: s.error });
}

/** A switch row with the connections of its ports (any order). */
export function toProtoSwitch(row: SwitchRow, connections: readonly { switchId: string; switchPort: string; machineId: string; machineNic: string; vrf: string | null }[]): Switch {
  const byPort = new Map(connections.filter((c) => c.switchId === row.id).map((c) => [c.switchPort, c]));
  return create(SwitchSchema, {
    id: row.id,
    partition: row.partitionId,
    rack: row.rackId,
    description: row.description,
    mode: modes[row.mode] ?? SwitchMode.OPERATIONAL,
    os: { vendor: row.osVendor, version: row.osVersion },
    managementIp: row.managementIp,
    consoleCommand: row.consoleCommand,
    nics: row.nics.map((n) => {
      const c = byPort.get(n.name);
      const actual = portStates[n.actual ?? "unknown"];
      const desired = n.desired ? portStates[n.desired] : SwitchPortState.UNSPECIFIED;
      return {
        name: n.name,
        identifier: n.identifier,
        vrf: c?.vrf ?? "",
        machineId: c?.machineId ?? "",
        machineNic: c?.machineNic ?? "",
        // Until metal-core confirms a toggle, the port is shown as what it was told to become.
        state: desired !== SwitchPortState.UNSPECIFIED ? desired : actual,
        desiredState: desired,
        actualState: actual,
      };
    }),
    lastSync: toProtoSync(row.lastSync),
    lastSyncError: toProtoSync(row.lastSyncError),
    meta: toProtoMeta(row),
  });
}
