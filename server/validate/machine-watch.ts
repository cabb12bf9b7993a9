import type { WatchAudience, WatchSpec } from "../sessions/watch/render.js";
import { validator } from "./validator.js";

/** The filters both MachineService.Watch requests share (tenant and admin). */
export interface MachineWatchRequest {
  partition?: string;
  id?: string;
  sinceRevision?: bigint;
  events: boolean;
  batchSnapshot?: boolean;
  summary?: boolean;
}

/** Checks a Watch request and turns it into the hub's spec for `audience`; InvalidArgument names every bad field. */
export function validateMachineWatch(req: MachineWatchRequest, audience: WatchAudience): WatchSpec {
  const v = validator();
  if (req.partition !== undefined) v.id("partition", req.partition, { max: 128 });
  if (req.id !== undefined) v.uuid("id", req.id);
  // Revisions are transaction ids; far beyond any a database hands out is a client bug, not a position.
  if (req.sinceRevision !== undefined && req.sinceRevision > BigInt(Number.MAX_SAFE_INTEGER)) v.add("since_revision", "is not a revision this server issued");
  v.check();
  return {
    audience,
    partition: req.partition,
    machineId: req.id?.toLowerCase(),
    sinceRevision: req.sinceRevision === undefined ? undefined : Number(req.sinceRevision),
    events: req.events,
    batchSnapshot: req.batchSnapshot ?? false,
    summary: req.summary ?? false,
  };
}
