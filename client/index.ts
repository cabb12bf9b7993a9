/**
 * The client package for Node (`metal/client`): typed clients for every
 * service of the control plane over Connect, gRPC or gRPC-Web, built on
 * connect-node. Browsers use `metal/client/web`. docs/clients.md tells how.
 */
import { Http2SessionManager } from "@connectrpc/connect-node";
import { type MetalClient, type MetalClientOptionsBase, metalInterceptors } from "./metal-client.js";
import { serviceClients } from "./services.js";
import { createTransport, type Protocol } from "./transport.js";

export { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
export { bearer, type TokenProvider } from "./bearer.js";
export type { MetalClient, MetalClientOptionsBase } from "./metal-client.js";
export { isReadMethod, type RetryReadsOptions, retryReads } from "./retry.js";
export { METAL_SERVICES, type MetalServiceClients, type MetalServices, serviceClients } from "./services.js";
export type { Protocol } from "./transport.js";

export interface MetalClientOptions extends MetalClientOptionsBase {
  /** "connect" (the default), "grpc" or "grpc-web". */
  readonly protocol?: Protocol;
  /** For "connect" and "grpc-web": HTTP/1.1 (the default) or HTTP/2. gRPC is always HTTP/2. */
  readonly httpVersion?: "1.1" | "2";
  /** For "connect": protobuf binary instead of JSON on the wire (faster for big lists; JSON is easier to read in a trace). */
  readonly binary?: boolean;
  /** Extra TLS trust for https:// (a private CA, PEM). */
  readonly ca?: string | Buffer;
}

export type NodeMetalClient = MetalClient & {
  /**
   * Ends the HTTP/2 connection, if the protocol made one; a later call opens
   * a new one. Over HTTP/1.1 there is nothing to end: idle keep-alive
   * connections do not keep a process alive.
   */
  close(): void;
};

/**
 * One call for every typed client: `createMetalClient({ baseUrl, token }).api.machine.list({ project })`.
 * Errors are ConnectError with the server's code.
 */
export function createMetalClient(opts: MetalClientOptions): NodeMetalClient {
  const protocol = opts.protocol ?? "connect";
  // Our own session manager for HTTP/2, so that close() can end the connection and a script can exit.
  const http2 = protocol === "grpc" || opts.httpVersion === "2";
  const sessionManager = http2 ? new Http2SessionManager(opts.baseUrl, {}, opts.ca === undefined ? {} : { ca: opts.ca }) : undefined;
  const transport = createTransport({
    baseUrl: opts.baseUrl,
    protocol,
    ...(opts.httpVersion ? { httpVersion: opts.httpVersion } : {}),
    ...(opts.binary === undefined ? {} : { binary: opts.binary }),
    ...(opts.ca === undefined ? {} : { ca: opts.ca }),
    ...(sessionManager ? { sessionManager } : {}),
    interceptors: metalInterceptors(opts),
  });
  return { ...serviceClients(transport), transport, close: () => sessionManager?.abort() };
}
