import type { Interceptor, Transport } from "@connectrpc/connect";
import { bearer, type TokenProvider } from "./bearer.js";
import { type RetryReadsOptions, retryReads } from "./retry.js";
import type { MetalServiceClients } from "./services.js";

/** What the Node and the browser entry of the client package both take. */
export interface MetalClientOptionsBase {
  /** The control plane, e.g. http://127.0.0.1:8080 or https://metal.example.com. */
  readonly baseUrl: string;
  /** A bearer token for every call, or a function asked on every call (a rotated file, a refreshed login). */
  readonly token?: string | TokenProvider;
  /** The same as `token` as a function; give one of the two. */
  readonly tokenProvider?: TokenProvider;
  /**
   * Reads (Get, List, Find, ... unary methods) that fail with Unavailable or
   * DeadlineExceeded are tried again with backoff, 3 calls in all by default;
   * `false` turns that off. Writes and streams are never retried.
   */
  readonly retry?: RetryReadsOptions | false;
  /** Run after the bearer and retry interceptors, in order (the last is closest to the network). */
  readonly interceptors?: readonly Interceptor[];
}

/** Typed clients for every service (see METAL_SERVICES) and the transport they share. */
export type MetalClient = MetalServiceClients & {
  /** For services or options the groups do not cover: `createClient(service, client.transport)`. */
  readonly transport: Transport;
};

/**
 * The interceptors every client of the package gets: the bearer token
 * outermost (asked once per call, so a retry resends what the call was sent
 * with), then the read retries, then the caller's own.
 */
export function metalInterceptors(opts: MetalClientOptionsBase): Interceptor[] {
  if (opts.token !== undefined && opts.tokenProvider !== undefined) throw new TypeError("give either token or tokenProvider, not both");
  const token = opts.tokenProvider ?? opts.token;
  return [...(token ? [bearer(token)] : []), ...(opts.retry === false ? [] : [retryReads(opts.retry)]), ...(opts.interceptors ?? [])];
}
