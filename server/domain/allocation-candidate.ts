/**
 * Why a machine named by id cannot be allocated. The rule itself lives in
 * one place, the repository's candidate condition, which allocation by size
 * and by id both lock through; this only explains a refusal afterwards, in
 * words that tell the caller nothing about other projects: a machine that
 * another project holds reads exactly like one that does not exist.
 */

export interface MachineFacts {
  partitionId: string | null;
  sizeId: string | null;
  state: "available" | "tainted" | "locked";
  project: string | null;
  allocated: boolean;
  waitingUntil: Date | null;
  /** Liveliness from the machine's events; undefined before its first event. */
  liveliness: string | undefined;
}

export interface Wanted {
  project: string;
  partition: string;
  size: string;
}

export type Refusal =
  /** Unknown, or allocated to another project: the same answer as an unknown id. */
  | { kind: "unknown" }
  /** Allocated to the caller's own project. */
  | { kind: "allocated" }
  | { kind: "elsewhere" }
  | { kind: "operator"; state: "tainted" | "locked" }
  | { kind: "not-waiting" }
  | { kind: "not-alive" }
  /** A candidate by every rule at the time it was read: another allocation holds or just took it. */
  | { kind: "busy" };

/** The first rule of the candidate condition the machine fails (checked in the order a caller can act on). */
export function whyNotCandidate(m: MachineFacts | undefined, want: Wanted, now: Date): Refusal {
  if (!m) return { kind: "unknown" };
  if (m.allocated) return m.project === want.project ? { kind: "allocated" } : { kind: "unknown" };
  if (m.partitionId !== want.partition || m.sizeId !== want.size) return { kind: "elsewhere" };
  if (m.state !== "available") return { kind: "operator", state: m.state };
  if (m.waitingUntil === null || m.waitingUntil.getTime() <= now.getTime()) return { kind: "not-waiting" };
  if (m.liveliness !== "Alive") return { kind: "not-alive" };
  return { kind: "busy" };
}

/** The words of a refusal for machine `id`; "unknown" is phrased by the caller as its usual NotFound. */
export function refusalText(id: string, r: Exclude<Refusal, { kind: "unknown" }>, want: Wanted): string {
  const base = `machine "${id}" is not available for allocation`;
  switch (r.kind) {
    case "allocated":
      return `machine "${id}" is already allocated`;
    case "elsewhere":
      return `${base}: it is not a ${want.size} machine in partition "${want.partition}"`;
    case "operator":
      return `${base}: an operator has ${r.state === "locked" ? "locked" : "reserved (tainted)"} it`;
    case "not-waiting":
      return `${base}: it is not waiting (no metal-hammer holds a Wait stream for it; a freed machine waits again only after it has been reclaimed)`;
    case "not-alive":
      return `${base}: it is not alive`;
    case "busy":
      return `${base}: another allocation holds it`;
  }
}
