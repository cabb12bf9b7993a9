import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport, type Http2SessionManager } from "@connectrpc/connect-node";
import { bearer, type TokenProvider } from "./bearer.js";
import { guardHttp2ClientSessions } from "./http2-goaway-guard.js";

// Before any session exists: see http2-goaway-guard.ts.
guardHttp2ClientSessions();

/**
 * How a client reaches the control plane:
 * - "grpc": gRPC over HTTP/2 (h2c for http://, TLS with ALPN for https://);
 *   what the edge daemons use, since their bidirectional streams need HTTP/2.
 * - "connect": the Connect protocol, HTTP/1.1 by default (what curl and
 *   browsers speak; one request per call, no long-lived session to manage),
 *   or HTTP/2 when asked.
 * - "grpc-web": gRPC-Web, what a browser speaks through a proxy that knows
 *   only gRPC-Web; HTTP/1.1 by default, or HTTP/2 when asked.
 */
export type Protocol = "grpc" | "connect" | "grpc-web";

export interface TransportOptions {
  /** The control plane, e.g. http://127.0.0.1:8080 or https://metal.example.com. */
  readonly baseUrl: string;
  readonly protocol?: Protocol;
  /** Only for "connect" and "grpc-web" (gRPC is always HTTP/2). */
  readonly httpVersion?: "1.1" | "2";
  /** Protobuf binary on the wire instead of JSON (gRPC and gRPC-Web are always binary). */
  readonly binary?: boolean;
  /** Sent as the bearer token of every call. */
  readonly token?: string | TokenProvider;
  /** Run after the bearer interceptor, in order (the last is closest to the network). */
  readonly interceptors?: readonly Interceptor[];
  /** Extra TLS trust for https:// (a private CA, PEM). Ignored with a sessionManager (it carries its own TLS options). */
  readonly ca?: string | Buffer;
  /** For HTTP/2 ("grpc", or "2" as httpVersion): the session to use, so its owner can close it (`abort()`) when done. */
  readonly sessionManager?: Http2SessionManager;
}

/** The one place a Node client transport is made: cli, edge daemons, tests and the client package all come through here. */
export function createTransport(opts: TransportOptions): Transport {
  const interceptors = [...(opts.token ? [bearer(opts.token)] : []), ...(opts.interceptors ?? [])];
  const base = { baseUrl: opts.baseUrl, interceptors, ...(opts.ca === undefined ? {} : { nodeOptions: { ca: opts.ca } }) };
  const protocol = opts.protocol ?? "grpc";
  const session = opts.sessionManager ? { sessionManager: opts.sessionManager } : {};
  if (protocol === "grpc") return createGrpcTransport({ ...base, ...session });
  if (protocol === "grpc-web") {
    if (opts.httpVersion === "2") return createGrpcWebTransport({ ...base, httpVersion: "2", ...session });
    return createGrpcWebTransport({ ...base, httpVersion: "1.1" });
  }
  const binary = { useBinaryFormat: opts.binary ?? false };
  if (opts.httpVersion === "2") return createConnectTransport({ ...base, httpVersion: "2", ...binary, ...session });
  return createConnectTransport({ ...base, httpVersion: "1.1", ...binary });
}
