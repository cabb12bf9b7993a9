/**
 * Choosing the machine for an allocation among the waiting candidates, and
 * whether size reservations leave one for the requesting project. Pure: the
 * caller reads candidates with FOR UPDATE SKIP LOCKED and passes them in.
 */

export interface Candidate {
  id: string;
  rack: string;
}

/** A machine of the same project and role already allocated in the partition and size. */
export interface PlacedMachine {
  rack: string;
  tags: readonly string[];
}

function leastOccupied(racks: readonly string[], machines: readonly PlacedMachine[]): Set<string> {
  const load = new Map<string, number>(racks.map((r) => [r, 0]));
  for (const m of machines) if (load.has(m.rack)) load.set(m.rack, load.get(m.rack)! + 1);
  const min = Math.min(...load.values());
  return new Set([...load].filter(([, n]) => n === min).map(([r]) => r));
}

/**
 * Spreads a project's machines over racks: prefer racks holding the fewest of
 * its machines, and among those the fewest carrying any of the placement
 * tags; when the two preferences disagree, the tags win. Then pick at random.
 */
export function chooseCandidate(candidates: readonly Candidate[], projectMachines: readonly PlacedMachine[], placementTags: readonly string[], random: () => number = Math.random): Candidate | undefined {
  if (candidates.length === 0) return undefined;
  const racks = [...new Set(candidates.map((c) => c.rack))];
  const byProject = leastOccupied(racks, projectMachines);
  const tagged = projectMachines.filter((m) => placementTags.some((t) => m.tags.includes(t)));
  const byTags = leastOccupied(racks, tagged);
  const both = [...byProject].filter((r) => byTags.has(r));
  const preferred = new Set(both.length > 0 ? both : [...byTags]);
  const pool = candidates.filter((c) => preferred.has(c.rack));
  return pool[Math.floor(random() * pool.length)];
}

/**
 * The rack to allocate from, given how many candidates wait in each rack and
 * how many machines of the project each rack holds: the same preference as
 * chooseCandidate, then a rack drawn with a weight of its waiting machines (so
 * every preferred candidate is equally likely, as if picked one by one).
 */
export function chooseRack(waiting: readonly { rack: string; n: number }[], projectMachines: readonly PlacedMachine[], placementTags: readonly string[], random: () => number = Math.random): string | undefined {
  const racks = waiting.filter((w) => w.n > 0).map((w) => w.rack);
  if (racks.length === 0) return undefined;
  const byProject = leastOccupied(racks, projectMachines);
  const byTags = leastOccupied(
    racks,
    projectMachines.filter((m) => placementTags.some((t) => m.tags.includes(t))),
  );
  const both = [...byProject].filter((r) => byTags.has(r));
  const preferred = new Set(both.length > 0 ? both : [...byTags]);
  const pool = waiting.filter((w) => w.n > 0 && preferred.has(w.rack));
  const total = pool.reduce((sum, w) => sum + w.n, 0);
  let ticket = random() * total;
  for (const w of pool) {
    ticket -= w.n;
    if (ticket < 0) return w.rack;
  }
  return pool[pool.length - 1]?.rack;
}

export interface Reservation {
  project: string;
  amount: number;
}

/**
 * Whether size reservations leave a machine for `project` when `available`
 * machines wait: a project with an unused reservation of its own may always
 * take one; otherwise the machines still reserved for other projects (amount
 * minus what they already use) must stay free.
 */
export function reservationsAllow(reservations: readonly Reservation[], usedByProject: ReadonlyMap<string, number>, project: string, available: number): boolean {
  const own = reservations.filter((r) => r.project === project).reduce((n, r) => n + r.amount, 0);
  if (own > (usedByProject.get(project) ?? 0)) return true;
  const reservedForOthers = new Map<string, number>();
  for (const r of reservations) if (r.project !== project) reservedForOthers.set(r.project, (reservedForOthers.get(r.project) ?? 0) + r.amount);
  let stillReserved = 0;
  for (const [p, amount] of reservedForOthers) stillReserved += Math.max(0, amount - (usedByProject.get(p) ?? 0));
  return stillReserved < available;
}
