import type { StoredEvent } from "../db/schema/index.js";
import { toProtoEvents } from "./machine.js";

/**
 * The events a change-log row of kind "event" carries (`{ events: [...] }`,
 * newest first, as the trigger stored them) as proto events. Anything else in
 * the payload (a row written by an older trigger) reads as no events.
 */
export function addedEventsFromPayload(payload: unknown) {
  const events = (payload as { events?: unknown } | null)?.events;
  if (!Array.isArray(events)) return [];
  const loaded = (events as StoredEvent[]).map((e) => ({ ...e, time: new Date(e.time) }));
  return toProtoEvents({ liveliness: "Unknown", events: loaded, lastEventTime: undefined, lastErrorEvent: undefined, crashLoop: false, failedMachineReclaim: false }).log;
}
