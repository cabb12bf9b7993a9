import { describe, expect, it, vi } from "vitest";
import { backoffDelay, backoffPolicy, retryLoop, sleep } from "../../client/backoff.js";

const policy = { initialMs: 100, maxMs: 1_000, jitter: 0.5 };

describe("backoff", () => {
  it("doubles from the initial wait up to the maximum; jitter only shortens", () => {
    const noJitter = { ...policy, jitter: 0 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, noJitter))).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(backoffDelay(3, policy, () => 0)).toBe(400);
    expect(backoffDelay(3, policy, () => 0.999_999)).toBeCloseTo(200, 3);
    expect(backoffDelay(1, { initialMs: 100, maxMs: 1_000 }, () => 1)).toBe(50); // the default jitter is one half
  });

  it("lets a caller override single fields of the default policy", () => {
    expect(backoffPolicy({ initialMs: 20 })).toEqual({ initialMs: 20, maxMs: 5_000, jitter: 0.5 });
  });

  it("sleep ends at once when its signal aborts", async () => {
    const stop = new AbortController();
    const slept = sleep(3_600_000, stop.signal);
    stop.abort();
    await slept;
    await sleep(3_600_000, AbortSignal.abort());
  });
});

describe("retryLoop", () => {
  const fast = { ...policy, initialMs: 1, maxMs: 8, jitter: 0 };

  it("retries until an attempt is done, backing off further after each failure", async () => {
    const waits: number[] = [];
    let calls = 0;
    const value = await retryLoop(
      async () => {
        calls++;
        if (calls < 5) throw new Error(`outage ${calls}`);
        return { done: "ok" };
      },
      { policy: fast, signal: new AbortController().signal, onRetry: ({ delayMs, err }) => (waits.push(delayMs), expect(String(err)).toContain("outage")) },
    );
    expect(value).toBe("ok");
    expect(waits).toEqual([1, 2, 4, 8]);
  });

  it("starts over from the initial wait after an attempt that proved the connection healthy", async () => {
    const waits: number[] = [];
    let calls = 0;
    await retryLoop(
      async ({ healthy }) => {
        calls++;
        if (calls === 3) healthy();
        if (calls === 6) return { done: undefined };
      },
      { policy: fast, signal: new AbortController().signal, onRetry: ({ delayMs }) => waits.push(delayMs) },
    );
    expect(waits).toEqual([1, 2, 1, 2, 4]);
  });

  it("counts an attempt that lasted resetAfterMs as healthy", async () => {
    const waits: number[] = [];
    let calls = 0;
    let clock = 0;
    const realNow = performance.now.bind(performance);
    performance.now = () => clock;
    try {
      await retryLoop(
        async () => {
          calls++;
          if (calls === 3) clock += 50;
          if (calls === 4) return { done: 1 };
        },
        { policy: { ...fast, resetAfterMs: 50 }, signal: new AbortController().signal, onRetry: ({ delayMs }) => waits.push(delayMs) },
      );
    } finally {
      performance.now = realNow;
    }
    expect(waits).toEqual([1, 2, 1]);
  });

  it("throws an error that is not retryable, and resolves undefined once stopped", async () => {
    const fatal = new Error("bad request");
    await expect(retryLoop(async () => Promise.reject(fatal), { policy: fast, signal: new AbortController().signal, retryable: (e) => e !== fatal })).rejects.toBe(fatal);
    const stop = new AbortController();
    let calls = 0;
    const result = await retryLoop(
      async () => {
        if (++calls === 3) stop.abort();
        throw new Error("down");
      },
      { policy: { ...fast, initialMs: 3_600_000, maxMs: 3_600_000 }, signal: stop.signal, onRetry: () => calls === 1 && stop.abort() },
    );
    expect(result).toBeUndefined();
    expect(calls).toBe(1);
  });
});

describe("sleep longer than a timer can wait", () => {
  it("waits the whole time in timer-sized steps instead of firing at once", async () => {
    vi.useFakeTimers();
    try {
      let done = false;
      const month = 30 * 24 * 3600 * 1000;
      const slept = sleep(month).then(() => (done = true));
      await vi.advanceTimersByTimeAsync(2 ** 31 - 1);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(month - (2 ** 31 - 1) - 1);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await slept;
      expect(done).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});
