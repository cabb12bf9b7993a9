import type http from "node:http";
import type http2 from "node:http2";

/** A request listener for node:http and node:http2 (compatibility API) alike. */
export type NodeHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;
