import { create } from "@bufbuild/protobuf";
import { MachineWatchChangeKind as Kind, type Machine, MachineWatchChangeSchema, MachineWatchEventsAddedSchema } from "../../../gen/metal/api/v1/machine_pb.js";
import { containerFromRow, toMachineSummary, toOperatorMachine, toProtoMachine } from "../../convert/machine.js";
import { addedEventsFromPayload } from "../../convert/machine-watch.js";
import type { ChangeRow } from "../../db/schema/index.js";
import { inProjectScope, type ProjectScope } from "../../domain/project-scope.js";
import type { WatchedMachine } from "../../repositories/machine-watch-repository.js";

/** Who watches: a tenant in its project scope (the tenant List's rule), or an operator (secrets as the admin Get decides). */
export type WatchAudience = { kind: "tenant"; scope: ProjectScope } | { kind: "operator"; secrets: boolean };

/** What one Watch call asked for, already checked by its handler. */
export interface WatchSpec {
  audience: WatchAudience;
  partition?: string;
  machineId?: string;
  sinceRevision?: number;
  events: boolean;
  /** The snapshot's machines as snapshot_batch messages instead of one snapshot message each. */
  batchSnapshot?: boolean;
  /** Machines as toMachineSummary leaves them (a table's columns only). */
  summary?: boolean;
}

/** One message of a watch; the tenant and admin responses share this oneof. */
export type WatchMessage =
  | { case: "snapshot"; value: Machine }
  | { case: "snapshotBatch"; value: { machines: Machine[] } }
  | { case: "snapshotDone"; value: { revision: bigint } }
  | { case: "change"; value: ReturnType<typeof change> }
  | { case: "eventsAdded"; value: ReturnType<typeof eventsAdded> }
  | { case: "reset"; value: { prunedRevision: bigint } };

/** A message with the transaction it came from (0 for snapshot messages). */
export interface WatchItem {
  tx: number;
  message: WatchMessage;
}

/**
 * Machines converted once per batch and audience variant, however many
 * watchers get them (1,000 watchers of one change cost one conversion).
 */
export class MachineViews {
  private readonly cache = new Map<string, Machine>();
  constructor(private readonly loaded: ReadonlyMap<string, WatchedMachine>) {}

  current(id: string): WatchedMachine | undefined {
    return this.loaded.get(id);
  }

  view(id: string, audience: WatchAudience, summary = false): Machine {
    const variant = `${audience.kind === "tenant" ? "t" : audience.secrets ? "s" : "o"}${summary ? "b" : ""}`;
    const key = `${variant}${id}`;
    let m = this.cache.get(key);
    if (!m) {
      m = summary ? toMachineSummary(this.view(id, audience)) : machineView(this.loaded.get(id)!, audience);
      this.cache.set(key, m);
    }
    return m;
  }
}

/** The machine as the matching Get answers it: the tenant Get, or the admin Get (user data withheld from operator viewers). */
export function machineView({ machine, events }: WatchedMachine, audience: WatchAudience): Machine {
  const container = events ? containerFromRow(events) : undefined;
  return audience.kind === "tenant" ? toProtoMachine(machine, container) : toOperatorMachine(machine, container, audience.secrets);
}

/** Whether a machine (its project and partition now) is one this watch may see: the List's rule plus the watch's filters. */
export function visible(spec: WatchSpec, id: string, project: string | null | undefined, partition: string | null | undefined): boolean {
  if (spec.machineId !== undefined && id !== spec.machineId) return false;
  if (spec.partition !== undefined && partition !== spec.partition) return false;
  return spec.audience.kind === "operator" || inProjectScope(spec.audience.scope, project);
}

const kinds: Record<ChangeRow["kind"], Kind> = {
  created: Kind.CREATED,
  updated: Kind.UPDATED,
  allocated: Kind.ALLOCATED,
  freed: Kind.FREED,
  deleted: Kind.DELETED,
  event: Kind.EVENTS,
  synced: Kind.UPDATED,
};

const change = (kind: Kind, row: ChangeRow, machine?: Machine) => create(MachineWatchChangeSchema, { kind, revision: BigInt(row.tx), id: row.entityId, machine });
const eventsAdded = (row: ChangeRow) => create(MachineWatchEventsAddedSchema, { id: row.entityId, revision: BigInt(row.tx), events: addedEventsFromPayload(row.payload) });

/**
 * What a watcher gets of a batch of change-log rows (in log order), given
 * the machines' rows as they are now.
 *
 * A change concerns the watcher when the machine was, or now is, one it may
 * see (its project before or after the change, its partition then or now).
 * It is sent with the machine as it is NOW when the watcher may still see
 * it; otherwise as "gone" with only its id, so a tenant sees a machine freed
 * from its project leave (and never its new state), and a deleted machine is
 * "deleted". With `events` the events a change added come as events_added;
 * without, as a change of kind EVENTS carrying the machine.
 */
export function renderChanges(spec: WatchSpec, rows: readonly ChangeRow[], views: MachineViews): WatchItem[] {
  const out: WatchItem[] = [];
  for (const row of rows) {
    if (row.entity !== "machine") continue;
    const id = row.entityId;
    const now = views.current(id);
    const wasVisible = visible(spec, id, row.project, row.partitionId) || visible(spec, id, row.previousProject, row.partitionId);
    const isVisible = now !== undefined && visible(spec, id, now.machine.project, now.machine.partitionId);
    if (!wasVisible && !isVisible) continue;
    let message: WatchMessage;
    if (row.kind === "deleted" && !isVisible) message = { case: "change", value: change(Kind.DELETED, row) };
    else if (!isVisible) message = { case: "change", value: change(Kind.GONE, row) };
    else if (row.kind === "event" && spec.events && addedCount(row) > 0) message = { case: "eventsAdded", value: eventsAdded(row) };
    else message = { case: "change", value: change(kinds[row.kind], row, views.view(id, spec.audience, spec.summary)) };
    out.push({ tx: row.tx, message });
  }
  markLastInRevision(out);
  return out;
}

const addedCount = (row: ChangeRow) => {
  const events = (row.payload as { events?: unknown } | null)?.events;
  return Array.isArray(events) ? events.length : 0;
};

/** Sets last_in_revision on each transaction's last message: a client resumes from a revision it has seen whole. */
function markLastInRevision(items: WatchItem[]): void {
  for (let i = 0; i < items.length; i++) {
    if (i + 1 < items.length && items[i + 1]!.tx === items[i]!.tx) continue;
    const m = items[i]!.message;
    if (m.case === "change" || m.case === "eventsAdded") m.value.lastInRevision = true;
  }
}
