import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { Duplex } from "node:stream";

import type { AppHandler as Handler, NodeHandler } from "./node-handler.js";

export interface Listener {
  /** The base URL clients use, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  /** Stops accepting, lets running calls finish for up to `graceMs`, then cuts the rest. */
  close(graceMs?: number): Promise<void>;
}

/**
 * node:http2 reads a net.Socket's native handle directly and would never see
 * bytes already read from it; handed any other Duplex, it reads through the
 * stream interface. So the h2c path gets a Duplex that replays the sniffed
 * bytes and then forwards the socket both ways.
 */
function withHead(socket: net.Socket, head: Buffer): Duplex {
  const d = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, encoding, cb) {
      socket.write(chunk, encoding, cb);
    },
    final(cb) {
      socket.end(cb);
    },
    destroy(err, cb) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  d.push(head);
  socket.on("data", (chunk) => {
    if (!d.push(chunk)) socket.pause();
  });
  socket.on("end", () => d.push(null));
  socket.on("close", () => d.destroy());
  socket.on("error", (err) => d.destroy(err));
  return d;
}

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * An h2c server that offers every stream to `take` first (the lean gRPC
 * path serves some raw) and wraps the rest in Node's compatibility request
 * and response for `handler`, as node:http2 does itself when given a
 * request listener (which would wrap every stream, so none is given).
 */
function rawFirstServer(handler: NodeHandler, take: NonNullable<Handler["takeStream"]>): http2.Http2Server {
  const server = http2.createServer();
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
    if (take(stream, headers)) return;
    const req = new http2.Http2ServerRequest(stream, headers, {}, rawHeaders);
    const res = new http2.Http2ServerResponse(stream);
    // What node:http2 answers when nobody listens for CONNECT or for expectations.
    if (headers[":method"] === "CONNECT") {
      res.statusCode = 405;
      res.end();
      return;
    }
    const expect = headers.expect;
    if (expect !== undefined) {
      if (!/^100-continue$/i.test(expect)) {
        res.statusCode = 417;
        res.end();
        return;
      }
      res.writeContinue();
    }
    handler(req, res);
  });
  return server;
}

/**
 * Serves one handler on one address for every protocol Connect speaks.
 *
 * Plain: each connection's first bytes decide. The HTTP/2 preface (gRPC, h2c
 * Connect, bidi streams) goes to a node:http2 server, anything else (curl,
 * browsers, Connect over HTTP/1.1) to a node:http server.
 * TLS: one HTTP/2 server with HTTP/1.1 allowed; ALPN decides.
 */
export async function listen(handler: Handler, address: string, tls?: { cert: string; key: string }): Promise<Listener> {
  const sep = address.lastIndexOf(":");
  const host = address.slice(0, sep).replace(/^\[|\]$/g, "");
  const port = Number(address.slice(sep + 1));
  const sockets = new Set<net.Socket>();
  const h2Sessions = new Set<http2.Http2Session>();

  let front: net.Server;
  let scheme: "http" | "https";
  let h1: http.Server | undefined;
  let h2: http2.Http2Server | http2.Http2SecureServer;
  if (tls) {
    scheme = "https";
    h2 = http2.createSecureServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key), allowHTTP1: true, noDelay: true }, handler);
    front = h2 as unknown as net.Server;
  } else {
    scheme = "http";
    h1 = http.createServer(handler as http.RequestListener);
    h2 = handler.takeStream ? rawFirstServer(handler, handler.takeStream) : http2.createServer(handler as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
    const h1s = h1;
    const h2s = h2;
    front = net.createServer({ noDelay: true }, (socket) => {
      let seen = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        seen = Buffer.concat([seen, chunk]);
        const n = Math.min(seen.length, H2_PREFACE.length);
        const isH2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
        if (isH2 && seen.length < H2_PREFACE.length) return; // wait for the whole preface
        socket.off("data", onData);
        socket.pause();
        if (isH2) {
          h2s.emit("connection", withHead(socket, seen));
        } else {
          // node:http reads through the socket's stream interface, so giving the bytes back is enough.
          socket.unshift(seen);
          h1s.emit("connection", socket);
        }
        socket.resume();
      };
      socket.on("data", onData);
      socket.on("error", () => socket.destroy());
    });
  }
  h2.on("session", (s: http2.Http2Session) => {
    h2Sessions.add(s);
    s.on("close", () => h2Sessions.delete(s));
  });
  front.on("connection", (s: net.Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });

  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    front.listen(port, host, () => {
      front.off("error", reject);
      resolve();
    });
  });
  const bound = front.address() as AddressInfo;
  const urlHost = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;

  return {
    url: `${scheme}://${urlHost}:${bound.port}`,
    async close(graceMs = 5_000) {
      const closed = new Promise<void>((resolve) => front.close(() => resolve()));
      h1?.closeIdleConnections();
      for (const s of h2Sessions) s.close();
      const timer = setTimeout(() => {
        for (const s of h2Sessions) s.destroy();
        for (const s of sockets) s.destroy();
      }, graceMs);
      h1?.close();
      await closed;
      clearTimeout(timer);
    },
  };
}
