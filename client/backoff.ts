/**
 * The one reconnect/backoff policy of the clients: the first wait is
 * `initialMs`, each failed attempt doubles it up to `maxMs`, jitter spreads
 * clients that failed together (the leaves of a partition after an outage)
 * so they do not all come back in the same instant, and an attempt that
 * proved the connection healthy starts the doubling over.
 */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
  /** Each wait is shortened by up to this fraction of itself, at random (0: none). Default 0.5. */
  readonly jitter?: number;
  /** An attempt that lasted at least this long counts as healthy even if it never said so (undefined: only an explicit `healthy()`). */
  readonly resetAfterMs?: number;
}

/**
 * At most 5 s between attempts: a daemon whose replica died is back on another
 * within 10 s even when a load balancer without health checks sends a few
 * attempts to the dead one first; jitter keeps a partition's daemons apart.
 */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 5_000, jitter: 0.5 };

/** The policy with `overrides` on top, so a caller may give only the fields it changes. */
export const backoffPolicy = (overrides?: Partial<BackoffPolicy>, base: BackoffPolicy = DEFAULT_BACKOFF): BackoffPolicy => ({ ...base, ...overrides });

/** The wait before retry number `failures` (1 = after the first failure), jitter applied with `random` in [0, 1). */
export function backoffDelay(failures: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.max(0, failures - 1));
  const jitter = Math.min(1, Math.max(0, policy.jitter ?? 0.5));
  return base * (1 - jitter * random());
}

/** The longest delay setTimeout takes; a longer one fires after 1 ms (with a warning). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Resolves after `ms`, or at once when `signal` aborts (a stopping client does not wait out its backoff). */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  // Waits longer than a timer can (a credential that expires in a month) in timer-sized steps.
  for (let left = ms; left > MAX_TIMER_MS && !signal?.aborted; left -= MAX_TIMER_MS) await sleepOnce(MAX_TIMER_MS, signal);
  return sleepOnce(ms > MAX_TIMER_MS ? ms % MAX_TIMER_MS : ms, signal);
}

function sleepOnce(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** What one attempt of a loop gets: the signal to stop on, and a way to say the connection works. */
export interface AttemptContext {
  readonly signal: AbortSignal;
  /** The attempt proved the connection healthy (the server answered): the next wait starts from `initialMs` again. */
  healthy(): void;
}

/** An attempt's verdict: `{ done: value }` ends the loop with the value; anything else (or a retryable error) tries again. */
// biome-ignore lint/suspicious/noConfusingVoidType: an attempt that returns nothing (a session that ended) means "try again"
export type AttemptResult<T> = { readonly done: T } | void;

export interface RetryLoopOptions {
  readonly policy: BackoffPolicy;
  readonly signal: AbortSignal;
  /** An error for which this is false is thrown out of the loop; by default every error is retried. */
  readonly retryable?: (err: unknown) => boolean;
  /** Told before each wait, with the error that ended the attempt (undefined when it ended without one). */
  readonly onRetry?: (info: { readonly err: unknown; readonly delayMs: number; readonly failures: number }) => void;
  readonly random?: () => number;
}

/**
 * Runs `attempt` until it returns `{ done }`, waiting by the policy between
 * attempts: the one loop behind daemon sessions that reconnect forever and
 * calls retried until they succeed. Resolves undefined once `signal` aborts.
 */
export async function retryLoop<T>(attempt: (ctx: AttemptContext) => Promise<AttemptResult<T>>, opts: RetryLoopOptions): Promise<T | undefined> {
  const { policy, signal } = opts;
  let failures = 0;
  while (!signal.aborted) {
    let wasHealthy = false;
    const started = performance.now();
    const ctx: AttemptContext = { signal, healthy: () => void (wasHealthy = true) };
    let err: unknown;
    try {
      const result = await attempt(ctx);
      if (result && "done" in result) return result.done;
    } catch (e) {
      if (signal.aborted) return undefined;
      if (opts.retryable && !opts.retryable(e)) throw e;
      err = e;
    }
    if (signal.aborted) return undefined;
    const longEnough = policy.resetAfterMs !== undefined && performance.now() - started >= policy.resetAfterMs;
    failures = wasHealthy || longEnough ? 1 : failures + 1;
    const delayMs = backoffDelay(failures, policy, opts.random);
    opts.onRetry?.({ err, delayMs, failures });
    await sleep(delayMs, signal);
  }
  return undefined;
}
