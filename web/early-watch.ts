/**
 * The console's first script (index.html runs it before the app's bundle,
 * scripts/build-web.ts): on a reload of a signed-in tab that had a machine
 * Watch open, it sends that Watch's request at once, so metal-api reads and
 * sends the snapshot while the browser still fetches, parses and runs the
 * app (about 0.1–0.3 s). The app's transport (web/api.ts
 * `adoptEarlyWatch`) takes the response for its first Watch call when that
 * call is exactly this request (same URL, token and request bytes); any
 * other first Watch call aborts it, and so does ADOPT_MS passing without one.
 *
 * It imports nothing at run time: a module shared with the app would become a
 * chunk this script waits for. So the few things it needs are written out
 * here: the session's storage keys (web/session.ts), the Connect protocol's
 * envelope and headers, and the two Watch requests' protobuf encoding
 * (the app's adoption compares bytes, so a drift only costs the head start;
 * test/web/console-load.test.ts checks the response is adopted).
 */

/** Where the app finds the early Watch (web/api.ts reads the same key). */
export const EARLY_WATCH_KEY = "metal-console.early-watch";

export interface EarlyWatch {
  readonly url: string;
  readonly authorization: string;
  readonly body: Uint8Array<ArrayBuffer>;
  readonly response: Promise<Response>;
  readonly controller: AbortController;
  /** Set once a call took the response (or it was given up): it is handed out at most once. */
  taken: boolean;
}

/** An early Watch no call adopted in this time is aborted (the app ran into something else: a sign-out, another project). */
const ADOPT_MS = 10_000;

// web/session.ts's keys.
const TOKEN_KEY = "metal-console.token";
const WATCH_KEY = "metal-console.watch";

const varint = (n: number, out: number[]) => {
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
};

/**
 * The Watch request as connect-web sends it (protobuf binary in a Connect envelope): the operators'
 * `{batch_snapshot: true, summary: true}` (fields 5 and 6) or a project's `{project, batch_snapshot: true,
 * summary: true}` (fields 1, 6 and 7).
 */
export function earlyWatchRequest(key: string): { path: string; body: Uint8Array<ArrayBuffer> } {
  const msg: number[] = [];
  let path: string;
  if (key === "*") {
    path = "/metal.admin.v1.MachineService/Watch";
    msg.push(5 << 3, 1, 6 << 3, 1);
  } else {
    path = "/metal.api.v1.MachineService/Watch";
    const project = new TextEncoder().encode(key);
    msg.push((1 << 3) | 2);
    varint(project.length, msg);
    msg.push(...project);
    msg.push(6 << 3, 1, 7 << 3, 1);
  }
  const body = new Uint8Array(5 + msg.length);
  new DataView(body.buffer).setUint32(1, msg.length);
  body.set(msg, 5);
  return { path, body };
}

/** The page's globals this script reads (declared here: the unit tests type-check it without the DOM's types). */
const page = globalThis as unknown as { sessionStorage?: { getItem(key: string): string | null }; location: { origin: string } };

function startEarlyWatch(): void {
  // Not in a page (the unit tests import earlyWatchRequest).
  const storage = page.sessionStorage;
  if (storage === undefined) return;
  const token = storage.getItem(TOKEN_KEY);
  const key = storage.getItem(WATCH_KEY);
  if (!token || key === null) return;
  const { path, body } = earlyWatchRequest(key);
  const url = `${page.location.origin}${path}`;
  const authorization = `Bearer ${token}`;
  const controller = new AbortController();
  const response = fetch(url, {
    method: "POST",
    redirect: "error",
    headers: { "content-type": "application/connect+proto", "connect-protocol-version": "1", authorization },
    body,
    signal: controller.signal,
  });
  // Whoever adopts it sees its failure; unadopted, a failure is nobody's.
  response.catch(() => {});
  const early: EarlyWatch = { url, authorization, body, response, controller, taken: false };
  (globalThis as Record<string, unknown>)[EARLY_WATCH_KEY] = early;
  setTimeout(() => {
    if (early.taken) return;
    early.taken = true;
    controller.abort();
  }, ADOPT_MS);
}

startEarlyWatch();
