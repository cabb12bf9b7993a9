import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, type Http2SessionManager } from "@connectrpc/connect-node";
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
 */
export type Protocol = "grpc" | "connect";

export interface TransportOptions {
  /** The control plane, e.g. http://127.0.0.1:8080 or https://metal.example.com. */
  readonly baseUrl: string;
  readonly protocol?: Protocol;
  /** Only for "connect" (gRPC is always HTTP/2). */
  readonly httpVersion?: "1.1" | "2";
  /** Protobuf binary on the wire instead of JSON (gRPC is always binary). */
  readonly binary?: boolean;
  /** Sent as the bearer token of every call. */
  readonly token?: string | TokenProvider;
  /** Run after the bearer interceptor, in order (the last is closest to the network). */
  readonly interceptors?: readonly Interceptor[];
  /** Extra TLS trust for https:// (a private CA, PEM). */
  readonly ca?: string | Buffer;
  /** Only for "grpc": the HTTP/2 session to use, so its owner can close it (`abort()`) when done. */
  readonly sessionManager?: Http2SessionManager;
}

/** The one place a Node client transport is made: cli, edge daemons and tests all come through here. */
export function createTransport(opts: TransportOptions): Transport {
  const interceptors = [...(opts.token ? [bearer(opts.token)] : []), ...(opts.interceptors ?? [])];
  const tls = opts.ca === undefined ? {} : { nodeOptions: { ca: opts.ca } };
  if ((opts.protocol ?? "grpc") === "grpc") return createGrpcTransport({ baseUrl: opts.baseUrl, interceptors, ...tls, ...(opts.sessionManager ? { sessionManager: opts.sessionManager } : {}) });
  const binary = { useBinaryFormat: opts.binary ?? false };
  if (opts.httpVersion === "2") return createConnectTransport({ baseUrl: opts.baseUrl, httpVersion: "2", interceptors, ...binary, ...tls });
  return createConnectTransport({ baseUrl: opts.baseUrl, httpVersion: "1.1", interceptors, ...binary, ...tls });
}
