import { describe, expect, it } from "vitest";
import { inUseRefusal, UserKind } from "../../../server/domain/in-use.js";

describe("inUseRefusal", () => {
  it("lets the delete go ahead when nothing uses the entity", () => {
    expect(inUseRefusal('size "s1"', [], "delete them first")).toBeUndefined();
    expect(inUseRefusal('size "s1"', [{ kind: UserKind.machine, count: 0, sample: [] }], "delete them first")).toBeUndefined();
  });

  it("names one kind of user with its ids, singular or plural", () => {
    expect(inUseRefusal('image "i"', [{ kind: UserKind.allocatedMachine, count: 1, sample: ["m1"] }], "free them first")).toBe('image "i" is still used by 1 allocated machine (m1); free them first');
    expect(inUseRefusal('partition "p"', [{ kind: UserKind.switch, count: 2, sample: ["a", "b"] }], "delete them first")).toBe('partition "p" is still used by 2 switches (a, b); delete them first');
  });

  it("names at most three ids and says when there are more, and joins the kinds in a sentence", () => {
    const users = [
      { kind: UserKind.machine, count: 8, sample: ["m1", "m2", "m3"] },
      { kind: UserKind.network, count: 0, sample: [] },
      { kind: UserKind.sizeReservation, count: 1, sample: ["r1"] },
      { kind: UserKind.sizeImageConstraint, count: 1, sample: ["s1"] },
    ];
    expect(inUseRefusal('size "s1"', users, "delete them first")).toBe('size "s1" is still used by 8 machines (m1, m2, m3, …), 1 size reservation (r1) and 1 size-image constraint (s1); delete them first');
  });
});
