export interface ReservationForUsage {
  id: string;
  sizeId: string;
  project: string;
  partitionIds: readonly string[];
  amount: number;
}

export interface ReservationUsage {
  reservationId: string;
  sizeId: string;
  project: string;
  partitionId: string;
  amount: number;
  usedAmount: number;
  projectAllocations: number;
}

export const usageKey = (partition: string, size: string, project: string) => `${partition}\u0000${size}\u0000${project}`;

/**
 * How much of each reservation (per partition) the project's allocated
 * machines use. A project with several reservations of one size in one
 * partition fills them in id order, so no machine counts for two of them
 * (the original counts each reservation on its own and can count a machine
 * twice).
 */
export function reservationUsage(reservations: readonly ReservationForUsage[], allocations: ReadonlyMap<string, number>): ReservationUsage[] {
  const left = new Map<string, number>();
  const out: ReservationUsage[] = [];
  for (const r of [...reservations].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    for (const partitionId of [...r.partitionIds].sort()) {
      const key = usageKey(partitionId, r.sizeId, r.project);
      const total = allocations.get(key) ?? 0;
      const remaining = left.get(key) ?? total;
      const used = Math.min(remaining, r.amount);
      left.set(key, remaining - used);
      out.push({ reservationId: r.id, sizeId: r.sizeId, project: r.project, partitionId, amount: r.amount, usedAmount: used, projectAllocations: total });
    }
  }
  return out;
}
