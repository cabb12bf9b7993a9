import { describe, expect, it } from "vitest";
import { singleFlightBatches } from "../../../server/sessions/batches.js";

/** A batch function the test releases by hand, recording what each call was given. */
function gated() {
  const calls: string[][] = [];
  const gates: (() => void)[] = [];
  const run = async (ids: readonly string[]) => {
    calls.push([...ids]);
    await new Promise<void>((r) => gates.push(r));
    return ids.map((id) => `${id}@${calls.length}`);
  };
  return { calls, release: () => gates.shift()!(), run };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("singleFlightBatches", () => {
  it("serves a lone request at once, and requests arriving meanwhile together in the next batch", async () => {
    const g = gated();
    const get = singleFlightBatches(g.run);
    const a = get("a");
    expect(g.calls).toEqual([["a"]]);
    const rest = ["b", "c", "a"].map(get);
    await tick();
    // The running batch is not joined: "a" asked again after it started, so it is read again.
    expect(g.calls).toEqual([["a"]]);
    g.release();
    expect(await a).toBe("a@1");
    await tick();
    expect(g.calls).toEqual([["a"], ["b", "c", "a"]]);
    g.release();
    expect(await Promise.all(rest)).toEqual(["b@2", "c@2", "a@2"]);
    // Idle again: the next request runs at once.
    const d = get("d");
    expect(g.calls).toHaveLength(3);
    g.release();
    expect(await d).toBe("d@3");
  });

  it("fails every request of a failed batch, and goes on with the next", async () => {
    let batches = 0;
    const get = singleFlightBatches(async (ids: readonly string[]) => {
      const first = ++batches === 1;
      await tick();
      if (first) throw new Error("boom");
      return ids.map((id) => id.toUpperCase());
    });
    const first = get("a");
    const queued = [get("b"), get("c")];
    await expect(first).rejects.toThrow("boom");
    expect(await Promise.all(queued)).toEqual(["B", "C"]);
  });
});
