import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

/** Sends `token` as the bearer token of every call. */
export const bearer =
  (token: string): Interceptor =>
  (next) =>
  (req) => (req.header.set("authorization", `Bearer ${token}`), next(req));

/** The gRPC (HTTP/2) transport a daemon dials out with: its streams need HTTP/2. */
export const daemonTransport = (apiUrl: string, token: string): Transport => createGrpcTransport({ baseUrl: apiUrl, interceptors: [bearer(token)] });

/** One JSON line per message on stderr, as the daemons log. */
export const jsonLog = (msg: string, fields?: Record<string, unknown>): void => {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), msg, ...fields }) + "\n");
};
