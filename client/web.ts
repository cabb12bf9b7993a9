/**
 * The client package for browsers (`metal/client/web`): the same typed
 * clients as `metal/client`, built on connect-web (fetch), over Connect or
 * gRPC-Web. Imports nothing of Node, so any bundler takes it as it is.
 */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { type MetalClient, type MetalClientOptionsBase, metalInterceptors } from "./metal-client.js";
import { serviceClients } from "./services.js";

export { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
export { bearer, type TokenProvider } from "./bearer.js";
export type { MetalClient, MetalClientOptionsBase } from "./metal-client.js";
export { isReadMethod, type RetryReadsOptions, retryReads } from "./retry.js";
export { METAL_SERVICES, type MetalServiceClients, type MetalServices, serviceClients } from "./services.js";

/** What a browser can speak: gRPC needs HTTP/2 trailers, which fetch does not give. */
export type WebProtocol = "connect" | "grpc-web";

export interface WebMetalClientOptions extends MetalClientOptionsBase {
  /** "connect" (the default) or "grpc-web". */
  readonly protocol?: WebProtocol;
  /** For "connect": protobuf binary instead of JSON on the wire. */
  readonly binary?: boolean;
  /** Another fetch (tests, a service worker, credentials of its own). */
  readonly fetch?: typeof globalThis.fetch;
}

/** One call for every typed client, in a browser. Errors are ConnectError with the server's code. */
export function createMetalClient(opts: WebMetalClientOptions): MetalClient {
  const common = { baseUrl: opts.baseUrl, interceptors: metalInterceptors(opts), ...(opts.fetch ? { fetch: opts.fetch } : {}) };
  const transport: Transport = opts.protocol === "grpc-web" ? createGrpcWebTransport(common) : createConnectTransport({ ...common, useBinaryFormat: opts.binary ?? false });
  return { ...serviceClients(transport), transport };
}
