import { WAIT_MS } from "./timeouts.js";

/** What the probe answers when the condition does not hold yet. */
type NotYet = undefined | false | null;

/**
 * Polls `probe` until it returns a value other than undefined, false or null,
 * and returns that value. A probe that throws counts as "not yet"; its last
 * error is part of the timeout message. The timeout defaults to WAIT_MS and
 * is scaled by METAL_TEST_TIME_SCALE like every other timeout of the suite:
 * pass `scaled(ms)` for a longer one.
 *
 * This is the one way a test waits for something to happen; never sleep.
 */
export async function eventually<R>(what: string, probe: () => R | NotYet | Promise<R | NotYet>, timeoutMs: number = WAIT_MS): Promise<R> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let pollMs = 5;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false && value !== null) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError === undefined ? "" : `: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    // Poll fast at first (most conditions hold within milliseconds), then back off to spare a loaded machine.
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    pollMs = Math.min(pollMs * 2, 50);
  }
}
