import { create, toJsonString } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type SwitchSync, SwitchSyncSchema } from "../../gen/metal/admin/v1/switch_pb.js";
import type { ProvisioningEvent } from "../../gen/metal/api/v1/machine_pb.js";
import { MachineFeedMessageSchema, SwitchFeedMessageSchema } from "../../gen/metal/feed/v1/feed_pb.js";
import type { ChangeRow, MachineEventsRow, MachineRow, StoredEvent, StoredSwitchSync, SwitchRow } from "../db/schema/index.js";
import type { EventType } from "../domain/provisioning.js";
import { containerFromRow, toOperatorMachine, toProtoEvents } from "./machine.js";
import { toProtoSwitch } from "./switch.js";

/**
 * The event feed's payloads (proto/metal/feed/v1/feed.proto) as proto JSON.
 * The machine is the operator's view without secrets: the feed goes to
 * operators' systems, which have no business with a tenant's user data or
 * a BMC's login (the Machine message never carries BMC credentials).
 */
export function machineFeedJson(change: ChangeRow, current: { machine: MachineRow; events: MachineEventsRow | undefined } | undefined): string {
  const json = machineFeedJsonWith(change, current, Number.POSITIVE_INFINITY);
  // A broker bounds a message (the MQTT bus at 256 KiB) and a refused message would stop the feed for good:
  // a machine's first container can carry 100 events of 4,096 characters each, so long messages are cut then.
  return Buffer.byteLength(json) <= FEED_MESSAGE_MAX_BYTES ? json : machineFeedJsonWith(change, current, CUT_EVENT_MESSAGE_AT);
}

/** Well under the MQTT bus's bound for a feed message. */
export const FEED_MESSAGE_MAX_BYTES = 128 * 1024;
const CUT_EVENT_MESSAGE_AT = 256;

function machineFeedJsonWith(change: ChangeRow, current: { machine: MachineRow; events: MachineEventsRow | undefined } | undefined, messageMax: number): string {
  const machine = current ? toOperatorMachine(current.machine, current.events ? containerFromRow(current.events) : undefined, false) : undefined;
  // The log (up to 100 events) would make every message large; the events a change added travel in `events`.
  if (machine?.events) machine.events.log = [];
  const message = create(MachineFeedMessageSchema, {
    ...common(change),
    machineId: change.entityId,
    partition: change.partitionId ?? "",
    project: change.project ?? "",
    previousProject: change.previousProject ?? "",
    machine,
    events: change.kind === "event" ? addedEvents(change.payload, messageMax) : [],
  });
  return toJsonString(MachineFeedMessageSchema, message);
}

export function switchFeedJson(change: ChangeRow, current: SwitchRow | undefined): string {
  const now = current ? toProtoSwitch(current, []) : undefined;
  // A sync report carries the sync as it was with this change; later reports come as changes of their own.
  const reported = change.kind === "synced" ? syncPayload(change.payload) : undefined;
  const message = create(SwitchFeedMessageSchema, {
    ...common(change),
    switchId: change.entityId,
    partition: change.partitionId ?? now?.partition ?? "",
    rack: now?.rack ?? "",
    lastSync: reported ? toProtoSync(reported.lastSync) : now?.lastSync,
    lastSyncError: reported ? toProtoSync(reported.lastSyncError) : now?.lastSyncError,
  });
  return toJsonString(SwitchFeedMessageSchema, message);
}

const common = (change: ChangeRow) => ({ revision: BigInt(change.revision), tx: BigInt(change.tx), kind: change.kind, time: timestampFromDate(change.at) });

/** The trigger's `{ events: [...] }` (newest first), oldest first; anything unreadable is left out. */
function addedEvents(payload: unknown, messageMax: number): ProvisioningEvent[] {
  const raw = (payload as { events?: unknown } | null)?.events;
  if (!Array.isArray(raw)) return [];
  const events = (raw as Partial<StoredEvent>[])
    .filter((e) => typeof e?.type === "string" && typeof e.time === "string" && !Number.isNaN(Date.parse(e.time)))
    .map((e) => ({ type: e.type as EventType, message: cut(typeof e.message === "string" ? e.message : "", messageMax), time: new Date(e.time!) }))
    .reverse();
  // The one event converter: through a container holding just these events.
  return toProtoEvents({ liveliness: "Unknown", events, lastEventTime: undefined, lastErrorEvent: undefined, crashLoop: false, failedMachineReclaim: false }).log.filter((e) => e.type !== 0);
}

const cut = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max)}…`);

function syncPayload(payload: unknown): { lastSync: StoredSwitchSync | null; lastSyncError: StoredSwitchSync | null } {
  const p = (payload ?? {}) as { lastSync?: StoredSwitchSync | null; lastSyncError?: StoredSwitchSync | null };
  return { lastSync: p.lastSync ?? null, lastSyncError: p.lastSyncError ?? null };
}

function toProtoSync(s: StoredSwitchSync | null): SwitchSync | undefined {
  if (!s || typeof s.time !== "string" || Number.isNaN(Date.parse(s.time))) return undefined;
  return create(SwitchSyncSchema, { time: timestampFromDate(new Date(s.time)), duration: durationFromMs(Number(s.durationMs) || 0), error: typeof s.error === "string" ? s.error : "" });
}
