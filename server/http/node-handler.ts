import type http from "node:http";
import type http2 from "node:http2";

/** A request listener for node:http and node:http2 (compatibility API) alike. */
export type NodeHandler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

/** Takes a raw HTTP/2 stream before the compatibility API wraps it; true when it serves the stream. */
export type StreamTaker = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

/** A request listener that may also take some HTTP/2 streams raw (see listener.ts, lean-grpc-streams.ts). */
export type AppHandler = NodeHandler & { takeStream?: StreamTaker };
