import type http from "node:http";
import type http2 from "node:http2";
import { createContextKey } from "@connectrpc/connect";

/**
 * The connection a call arrived on: the socket of an HTTP/1.1 request, the
 * session of an HTTP/2 stream. Stream limits count per connection and, for
 * public streams, per remote address.
 */
export type Connection = object;

export const kConnection = createContextKey<Connection | undefined>(undefined, { description: "connection" });

/** The connection of a request from node:http or node:http2's compatibility API. */
export function connectionOfRequest(req: http.IncomingMessage | http2.Http2ServerRequest): Connection {
  return "stream" in req ? req.stream.session ?? req.socket : req.socket;
}

/** The connection of a raw HTTP/2 stream. */
export function connectionOfStream(stream: http2.ServerHttp2Stream): Connection | undefined {
  return stream.session;
}

/** The remote address of a connection ("" once it is gone). */
export function addressOf(connection: Connection | undefined): string {
  const c = connection as { socket?: { remoteAddress?: string }; remoteAddress?: string } | undefined;
  return c?.remoteAddress ?? c?.socket?.remoteAddress ?? "";
}
