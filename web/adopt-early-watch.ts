/**
 * The app's side of web/early-watch.ts: the first Watch call takes the
 * response of the Watch that script sent before the app ran, when it is the
 * same request. Kept apart from web/api.ts (and free of DOM types) so it can
 * be tested without a browser; early-watch.ts itself is only imported for
 * its types (a value imported from it would make that script a chunk shared with the app).
 */
import type { EarlyWatch } from "./early-watch.js";

/** web/early-watch.ts EARLY_WATCH_KEY (a value imported from there would make that script a chunk shared with the app). */
const EARLY_WATCH_KEY = "metal-console.early-watch";

/** Performance mark set when the first Watch call took the Watch web/early-watch.ts sent (read by test/web/console-load.ts). */
export const MARK_EARLY_WATCH_ADOPTED = "metal:early-watch-adopted";

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * The response of the Watch web/early-watch.ts sent before the app ran, for the first Watch call when it is the
 * same request (URL, token, bytes), with the call's signal passed on to it; undefined otherwise. The first Watch
 * call decides: an early Watch it does not match is aborted.
 */
export function adoptEarlyWatch(input: unknown, init: RequestInit | undefined): Promise<Response> | undefined {
  const early = (globalThis as Record<string, unknown>)[EARLY_WATCH_KEY] as EarlyWatch | undefined;
  if (!early || early.taken || typeof input !== "string" || !input.endsWith("/Watch")) return undefined;
  early.taken = true;
  const headers = new Headers(init?.headers);
  if (input !== early.url || headers.get("authorization") !== early.authorization || !(init?.body instanceof Uint8Array) || !sameBytes(init.body, early.body)) {
    early.controller.abort();
    return undefined;
  }
  const signal = init.signal;
  if (signal) {
    if (signal.aborted) early.controller.abort(signal.reason);
    else signal.addEventListener("abort", () => early.controller.abort(signal.reason), { once: true });
  }
  performance.mark(MARK_EARLY_WATCH_ADOPTED);
  return early.response;
}
