/**
 * The console's connection to metal-api: Connect (binary) over fetch to the
 * origin that served the page, so the Content-Security-Policy's
 * connect-src 'self' is all it needs and no CORS is involved. Every call
 * carries the signed-in token; reads (Get, List, ...) that meet
 * Unavailable or DeadlineExceeded are tried again, as in every client of
 * the package (client/metal-client.ts).
 */
import type { DescService } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { metalInterceptors } from "../client/metal-client.js";
import { adoptEarlyWatch } from "./adopt-early-watch.js";

export type ClientOf = <S extends DescService>(service: S) => Client<S>;

export function createApi(token: string, baseUrl = window.location.origin): ClientOf {
  // The client package's bearer and read-retry interceptors (what client/web.ts's createMetalClient uses). Not
  // createMetalClient itself: its typed clients for every service would add every service's descriptor
  // (+13 KiB gzip) to the first load, for the dozen services the console calls.
  const transport = createConnectTransport({ baseUrl, useBinaryFormat: true, interceptors: metalInterceptors({ baseUrl, token }), fetch: (input, init) => adoptEarlyWatch(input, init) ?? fetch(input, init) });
  const clients = new Map<DescService, unknown>();
  return <S extends DescService>(service: S) => {
    let c = clients.get(service) as Client<S> | undefined;
    if (!c) clients.set(service, (c = createClient(service, transport)));
    return c;
  };
}

/** What a person should read for each code: what happened and what to do, then the server's own words. */
const EXPLAIN: Partial<Record<Code, string>> = {
  [Code.Unauthenticated]: "The token was not accepted (expired, revoked or mistyped): sign in again",
  [Code.PermissionDenied]: "Your token may not do this",
  [Code.NotFound]: "Not found (or not yours)",
  [Code.AlreadyExists]: "It exists already",
  [Code.InvalidArgument]: "The request was refused",
  [Code.FailedPrecondition]: "Not possible in the current state",
  [Code.ResourceExhausted]: "A limit or quota was reached",
  [Code.Aborted]: "Someone else changed it first: reload and try again",
  [Code.Unavailable]: "metal-api cannot be reached right now",
  [Code.DeadlineExceeded]: "metal-api did not answer in time",
  [Code.Internal]: "metal-api failed; its log has the details",
  [Code.Unimplemented]: "This metal-api does not offer this call (an older version?)",
  [Code.Canceled]: "Cancelled",
};

/** One line for a failed call, e.g. "Not possible in the current state: machine is locked". */
export function describeError(err: unknown): string {
  const e = ConnectError.from(err);
  const explained = EXPLAIN[e.code] ?? `Failed (${Code[e.code] ?? e.code})`;
  return e.rawMessage && e.rawMessage !== explained ? `${explained}: ${e.rawMessage}` : explained;
}

export const isUnauthenticated = (err: unknown) => ConnectError.from(err).code === Code.Unauthenticated;

/** Every page of a paged List (at most `max` items: a console page shows what a person can read). */
export async function allPages<T>(page: (paging: { limit: number; pageToken: string }) => Promise<{ items: T[]; next: string }>, max = 10_000): Promise<T[]> {
  const out: T[] = [];
  let pageToken = "";
  do {
    const r = await page({ limit: 1000, pageToken });
    out.push(...r.items);
    pageToken = r.next;
  } while (pageToken && out.length < max);
  return out;
}
