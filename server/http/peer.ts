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
  return "stream" in req ? (req.stream.session ?? req.socket) : req.socket;
}

/** The connection of a raw HTTP/2 stream. */
export function connectionOfStream(stream: http2.ServerHttp2Stream): Connection | undefined {
  return stream.session;
}

/** Remote addresses of HTTP/2 sessions, noted by the listener when each session starts. */
const sessionAddresses = new WeakMap<Connection, string>();

/**
 * Notes where an HTTP/2 session comes from, once, when it starts: node:http2
 * hands out a proxy of its socket (and, for a socket that is not a plain TCP
 * socket, a wrapper without a remote address, whose `stream` still has it).
 */
export function noteSessionAddress(session: http2.Http2Session): void {
  const socket = session.socket as unknown as { remoteAddress?: string; stream?: { remoteAddress?: string } } | undefined;
  const address = socket?.remoteAddress ?? socket?.stream?.remoteAddress;
  if (address) sessionAddresses.set(session, address);
}

/** The remote address of a connection ("" when unknown). */
export function addressOf(connection: Connection | undefined): string {
  if (!connection) return "";
  const noted = sessionAddresses.get(connection);
  if (noted !== undefined) return noted;
  const c = connection as { socket?: { remoteAddress?: string }; remoteAddress?: string };
  return c.remoteAddress ?? c.socket?.remoteAddress ?? "";
}
