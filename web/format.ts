/**
 * The machine table of `metalctl machine list`, for the browser: the same
 * columns, the same status markers, the same words. cli/commands/machine.ts
 * cannot be bundled (it imports oclif and Node), so the few pure rules are
 * written again here; test/web/format.test.ts compares both on the same
 * machines, so they cannot drift apart. No DOM and no Node in this file.
 */
import type { DescEnum } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { type Machine, MachineLiveliness, MachineState, MachineStateSchema, ProvisioningEventTypeSchema } from "../gen/metal/api/v1/machine_pb.js";

const ACRONYMS = new Set(["PXE", "BMC", "LED", "IP", "V4", "V6", "VRF", "ASN", "BIOS", "CPU", "GPU", "NAT", "OS", "RAID", "LVM", "GPT"]);

/** Labels already worked out, per enum: the table asks for the same few a thousand times. */
const labels = new WeakMap<DescEnum, Map<number, string>>();

/** Enum value name without the type prefix, in words: PROVISIONING_EVENT_TYPE_PHONED_HOME -> "Phoned Home" (as metalctl). */
export function enumLabel(schema: DescEnum, value: number): string {
  let known = labels.get(schema);
  if (!known) labels.set(schema, (known = new Map()));
  let label = known.get(value);
  if (label === undefined) {
    const v = schema.values.find((x) => x.number === value);
    label =
      !v || value === 0
        ? ""
        : v.localName
            .split("_")
            .map((w) => (/^[0-9]+$/.test(w) || ACRONYMS.has(w) ? w : w[0] + w.slice(1).toLowerCase()))
            .join(" ");
    known.set(value, label);
  }
  return label;
}

/** Short duration since a timestamp like metalctl's: 45s, 3m, 5h, 12d. */
export function since(ts: Timestamp | undefined, now = Date.now()): string {
  if (!ts) return "";
  const s = Math.max(0, Math.floor((now - timestampDate(ts).getTime()) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export const isoTime = (ts: Timestamp | undefined) => (ts ? timestampDate(ts).toISOString() : "");

/** One status marker with what it means (the browser shows the meaning as a tooltip). */
export interface StatusMarker {
  readonly mark: string;
  readonly meaning: string;
}

/** The status markers of metalctl (and the original metalctl), in its order. */
export function machineMarkers(m: Machine, now = Date.now()): StatusMarker[] {
  const e = m.events;
  const out: StatusMarker[] = [];
  if (m.state === MachineState.LOCKED) out.push({ mark: "🔒", meaning: "locked" });
  if (m.state === MachineState.TAINTED) out.push({ mark: "🚧", meaning: "reserved (tainted)" });
  if (e?.liveliness === MachineLiveliness.DEAD) out.push({ mark: "💀", meaning: "dead" });
  if (e?.liveliness === MachineLiveliness.UNKNOWN) out.push({ mark: "❓", meaning: "liveliness unknown" });
  if (e?.crashLoop) out.push({ mark: "⭕", meaning: "provisioning crash loop" });
  if (e?.failedMachineReclaim) out.push({ mark: "🚑", meaning: "failed reclaim" });
  // A recent error only: the list's threshold is one hour.
  const err = e?.lastErrorEvent?.time;
  if (err && now - timestampDate(err).getTime() < 3600_000) out.push({ mark: "❗", meaning: "error in the last hour" });
  return out;
}

export const machineStatus = (m: Machine, now = Date.now()) =>
  machineMarkers(m, now)
    .map((s) => s.mark)
    .join("");

export const lastEvent = (m: Machine) => m.events?.log[0];

/** A column of the machine table: header and cell text, as `metalctl machine list` (not -o wide) prints it. */
export interface MachineColumn {
  readonly header: string;
  readonly value: (m: Machine, now: number) => string;
}

export const machineColumns: readonly MachineColumn[] = [
  { header: "ID", value: (m) => m.id },
  { header: "", value: (m, now) => machineStatus(m, now) },
  { header: "Last Event", value: (m) => enumLabel(ProvisioningEventTypeSchema, lastEvent(m)?.type ?? 0) },
  { header: "When", value: (m, now) => since(lastEvent(m)?.time, now) },
  { header: "Age", value: (m, now) => since(m.allocation?.createdAt, now) },
  { header: "Hostname", value: (m) => m.allocation?.hostname ?? "" },
  { header: "Project", value: (m) => m.allocation?.project ?? "" },
  { header: "Size", value: (m) => m.size },
  { header: "Image", value: (m) => m.allocation?.image ?? "" },
  { header: "Partition", value: (m) => m.partition },
  { header: "Rack", value: (m) => m.rack },
];

export const stateLabel = (m: Machine) => enumLabel(MachineStateSchema, m.state);
