import { describe, expect, it } from "vitest";
import { AsyncQueue } from "../../client/async-queue.js";

async function drain<T>(q: AsyncQueue<T>): Promise<T[]> {
  const got: T[] = [];
  for await (const x of q) got.push(x);
  return got;
}

describe("AsyncQueue", () => {
  it("hands items to a waiting reader in order and ends after close with what was queued", async () => {
    const q = new AsyncQueue<number>();
    const reading = drain(q);
    q.push(1);
    await Promise.resolve();
    q.push(2);
    q.push(3);
    q.close();
    expect(await reading).toEqual([1, 2, 3]);
    expect(q.push(4)).toBe(false);
    expect(q.closed).toBe(true);
  });

  it("refuses beyond its capacity, and takes items again once the reader caught up", async () => {
    const q = new AsyncQueue<number>({ capacity: 2 });
    expect(q.push(1)).toBe(true);
    expect(q.push(2)).toBe(true);
    expect(q.push(3)).toBe(false);
    expect(q.size).toBe(2);
    const it = q[Symbol.asyncIterator]();
    expect((await it.next()).value).toBe(1);
    expect(q.push(4)).toBe(true);
    q.close();
    expect((await it.next()).value).toBe(2);
    expect((await it.next()).value).toBe(4);
    expect((await it.next()).done).toBe(true);
  });

  it("skips an item that adds nothing to what waits, and counts it as taken", async () => {
    const q = new AsyncQueue<string>({ skip: (item, queued) => item === "heartbeat" && queued.includes("heartbeat") });
    expect(q.push("heartbeat")).toBe(true);
    expect(q.push("heartbeat")).toBe(true);
    q.push("report");
    q.push("heartbeat");
    q.close();
    expect(await drain(q)).toEqual(["heartbeat", "report"]);
  });
});
