import { describe, expect, it } from "vitest";
import { reservationUsage, usageKey } from "../../../server/domain/size-reservation-usage.js";

describe("reservationUsage", () => {
  it("counts the project's machines per partition, at most the amount", () => {
    const rows = reservationUsage([{ id: "r1", sizeId: "s1", project: "pa", partitionIds: ["p2", "p1"], amount: 3 }], new Map([[usageKey("p1", "s1", "pa"), 5]]));
    expect(rows).toEqual([
      { reservationId: "r1", sizeId: "s1", project: "pa", partitionId: "p1", amount: 3, usedAmount: 3, projectAllocations: 5 },
      { reservationId: "r1", sizeId: "s1", project: "pa", partitionId: "p2", amount: 3, usedAmount: 0, projectAllocations: 0 },
    ]);
  });

  it("fills several reservations of one project in id order, never counting a machine twice", () => {
    const rows = reservationUsage(
      [
        { id: "r2", sizeId: "s1", project: "pa", partitionIds: ["p1"], amount: 2 },
        { id: "r1", sizeId: "s1", project: "pa", partitionIds: ["p1"], amount: 2 },
        { id: "r3", sizeId: "s1", project: "pb", partitionIds: ["p1"], amount: 1 },
      ],
      new Map([[usageKey("p1", "s1", "pa"), 3]]),
    );
    expect(rows.map((r) => [r.reservationId, r.usedAmount])).toEqual([
      ["r1", 2],
      ["r2", 1],
      ["r3", 0],
    ]);
  });
});
