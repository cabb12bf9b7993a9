/**
 * How many machines of each partition and size there are, what they are
 * doing, and how many a project could still get. Pure: the repository reads
 * the machines (with the allocation candidate rule already evaluated by the
 * database, so "allocatable" is exactly what allocation would find) and the
 * size reservations; everything is counted here.
 */
import { type MachineFacts, machineIssues } from "./machine-issues.js";
import { EventType } from "./provisioning.js";
import { UNKNOWN_SIZE } from "./size.js";

export interface CapacityMachine {
  id: string;
  partition: string;
  /** The matched size; "unknown" also for machines that have not registered yet. */
  size: string;
  /** The allocation's project; undefined while free. */
  project: string | undefined;
  /** Whether the machine meets the allocation candidate rule right now. */
  candidate: boolean;
  /** What the issue rules need; `events.events[0]` must be the newest event. */
  facts: MachineFacts;
}

export interface CapacityReservation {
  project: string;
  size: string;
  partitions: readonly string[];
  amount: number;
}

export interface SizeCapacity {
  size: string;
  total: number;
  allocated: number;
  allocatable: number;
  free: number;
  unavailable: number;
  faulty: number;
  faultyMachines: string[];
  phonedHome: number;
  waiting: number;
  other: number;
  otherMachines: string[];
  reservations: number;
  usedReservations: number;
  remainingReservations: number;
}

export interface PartitionCapacity {
  partition: string;
  sizes: SizeCapacity[];
}

export interface CapacityInput {
  /** The partitions to report on, each reported even when empty. */
  partitions: readonly string[];
  machines: readonly CapacityMachine[];
  reservations: readonly CapacityReservation[];
  /** The asking project: its own reservations are its to use, so they do not reduce its free count. */
  project?: string;
  now: Date;
}

/** A recent error event alone does not make a machine unusable; every other issue does. */
export function isFaulty(facts: MachineFacts, now: Date): boolean {
  return machineIssues(facts, now).some((issue) => issue !== "last-event-error");
}

const emptySize = (size: string): SizeCapacity => ({
  size,
  total: 0,
  allocated: 0,
  allocatable: 0,
  free: 0,
  unavailable: 0,
  faulty: 0,
  faultyMachines: [],
  phonedHome: 0,
  waiting: 0,
  other: 0,
  otherMachines: [],
  reservations: 0,
  usedReservations: 0,
  remainingReservations: 0,
});

function count(cap: SizeCapacity, m: CapacityMachine, now: Date): void {
  cap.total++;
  if (isFaulty(m.facts, now)) {
    cap.faulty++;
    cap.faultyMachines.push(m.id);
  }
  // Allocation view: every machine is in exactly one of these.
  if (m.project !== undefined) cap.allocated++;
  else if (m.candidate) cap.allocatable++;
  else cap.unavailable++;
  // Provisioning view: every machine is in exactly one of these.
  const newest = m.facts.events?.events[0]?.type;
  if (newest === EventType.PHONED_HOME) cap.phonedHome++;
  else if (newest === EventType.WAITING) cap.waiting++;
  else {
    cap.other++;
    cap.otherMachines.push(m.id);
  }
}

/**
 * Reservations per project, summed: a project with two reservations of one
 * size in one partition uses its machines against both together, as the
 * allocation's reservation check does (the original counted them per
 * reservation and so could count one machine twice).
 */
function applyReservations(cap: SizeCapacity, reserved: ReadonlyMap<string, number>, used: ReadonlyMap<string, number>, asking: string | undefined): void {
  let heldForOthers = 0;
  for (const [project, amount] of reserved) {
    const inUse = Math.min(used.get(project) ?? 0, amount);
    cap.reservations += amount;
    cap.usedReservations += inUse;
    if (project !== asking) heldForOthers += amount - inUse;
  }
  cap.remainingReservations = cap.reservations - cap.usedReservations;
  cap.free = Math.max(0, cap.allocatable - heldForOthers);
}

/**
 * The capacity of each partition, per size: sizes with machines or with
 * reservations in the partition, ordered by id; machine ids sorted.
 */
export function computeCapacity(input: CapacityInput): PartitionCapacity[] {
  const wanted = new Set(input.partitions);
  const bySize = new Map<string, Map<string, SizeCapacity>>(input.partitions.map((p) => [p, new Map()]));
  const capOf = (partition: string, size: string) => {
    const sizes = bySize.get(partition)!;
    let cap = sizes.get(size);
    if (!cap) sizes.set(size, (cap = emptySize(size)));
    return cap;
  };
  // Allocated machines per partition, size and project: what the reservations are used by.
  const used = new Map<string, Map<string, number>>();
  const key = (partition: string, size: string) => `${partition}\u0000${size}`;
  for (const m of input.machines) {
    if (!wanted.has(m.partition)) continue;
    count(capOf(m.partition, m.size), m, input.now);
    if (m.project !== undefined) {
      const k = key(m.partition, m.size);
      const perProject = used.get(k) ?? new Map<string, number>();
      perProject.set(m.project, (perProject.get(m.project) ?? 0) + 1);
      used.set(k, perProject);
    }
  }
  const reserved = new Map<string, Map<string, number>>();
  for (const r of input.reservations) {
    // Machines that match no size cannot be reserved.
    if (r.size === UNKNOWN_SIZE) continue;
    for (const p of new Set(r.partitions)) {
      if (!wanted.has(p)) continue;
      capOf(p, r.size);
      const k = key(p, r.size);
      const perProject = reserved.get(k) ?? new Map<string, number>();
      perProject.set(r.project, (perProject.get(r.project) ?? 0) + r.amount);
      reserved.set(k, perProject);
    }
  }
  const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return [...input.partitions].sort(byId).map((partition) => ({
    partition,
    sizes: [...bySize.get(partition)!.values()]
      .sort((a, b) => byId(a.size, b.size))
      .map((cap) => {
        const k = key(partition, cap.size);
        applyReservations(cap, reserved.get(k) ?? new Map(), used.get(k) ?? new Map(), input.project);
        cap.faultyMachines.sort(byId);
        cap.otherMachines.sort(byId);
        return cap;
      }),
  }));
}
