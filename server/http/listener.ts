import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import net from "node:net";
import tls from "node:tls";

import { type ConnectionSettings, connectionDefaults } from "../config.js";
import { afterPendingInput, ConnectionCaps, SessionWatch } from "./connection-guard.js";
import type { AppHandler as Handler, NodeHandler } from "./node-handler.js";
import { noteSessionAddress } from "./peer.js";

export interface Listener {
  /** The base URL clients use, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  /** Stops accepting, lets running calls finish for up to `graceMs`, then cuts the rest. */
  close(graceMs?: number): Promise<void>;
}

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * An h2c server that offers every stream to `take` first (the lean gRPC
 * path serves some raw) and wraps the rest in Node's compatibility request
 * and response for `handler`, as node:http2 does itself when given a
 * request listener (which would wrap every stream, so none is given).
 */
function rawFirstServer(handler: NodeHandler, take: NonNullable<Handler["takeStream"]>, options: http2.ServerOptions): http2.Http2Server {
  const server = http2.createServer(options);
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

/** TCP keepalive finds peers that vanished under a silent long-lived stream (a Wait, a session), which no idle timeout may close. */
const TCP_KEEPALIVE_DELAY_MS = 60_000;

/** node:http checks its header and request timeouts on an interval; often enough that they fire close to their time. */
const checkingInterval = (limits: ConnectionSettings) => Math.min(30_000, Math.max(50, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)));

/**
 * Serves one handler on one address for every protocol Connect speaks.
 *
 * Plain: each connection's first bytes decide. The HTTP/2 preface (gRPC, h2c
 * Connect, bidi streams) goes to a node:http2 server, anything else (curl,
 * browsers, Connect over HTTP/1.1) to a node:http server.
 * TLS: ALPN decides between the same two servers.
 *
 * No connection holds a slot for nothing (`limits`): connections over the
 * total or per-address cap are closed on accept; a connection must show its
 * first request (preface or headers; TLS: its handshake) within the headers
 * timeout; HTTP/1.1 requests must arrive within the request timeout; idle
 * HTTP/1.1 connections and HTTP/2 connections without an open stream are
 * closed after the idle timeout; an HTTP/2 connection opens at most
 * `http2MaxStreams` streams at once.
 */
export async function listen(handler: Handler, address: string, tlsFiles?: { cert: string; key: string }, limits: ConnectionSettings = connectionDefaults()): Promise<Listener> {
  const sep = address.lastIndexOf(":");
  const host = address.slice(0, sep).replace(/^\[|\]$/g, "");
  const port = Number(address.slice(sep + 1));
  const sockets = new Set<net.Socket>();
  const h2Sessions = new Set<http2.Http2Session>();
  const caps = new ConnectionCaps(limits);

  const h1 = http.createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.idleTimeoutMs,
      connectionsCheckingInterval: checkingInterval(limits),
      noDelay: true,
    },
    handler as http.RequestListener,
  );
  // node:http starts enforcing headersTimeout and requestTimeout when it starts listening; this one never
  // listens (connections are handed to it), so it is told it does, which starts exactly that and nothing else.
  h1.emit("listening");
  const h2Options: http2.ServerOptions = { settings: { maxConcurrentStreams: limits.http2MaxStreams } };
  const h2 = handler.takeStream
    ? rawFirstServer(handler, handler.takeStream, h2Options)
    : http2.createServer(h2Options, handler as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  const netOptions = { noDelay: true, keepAlive: true, keepAliveInitialDelay: TCP_KEEPALIVE_DELAY_MS };

  let front: net.Server;
  let scheme: "http" | "https";
  if (tlsFiles) {
    scheme = "https";
    front = tls.createServer({
      ...netOptions,
      cert: readFileSync(tlsFiles.cert),
      key: readFileSync(tlsFiles.key),
      ALPNProtocols: ["h2", "http/1.1"],
      handshakeTimeout: limits.headersTimeoutMs,
    });
    front.on("secureConnection", (socket: tls.TLSSocket) => {
      if (socket.alpnProtocol === "h2") h2.emit("connection", socket);
      else h1.emit("connection", socket);
    });
  } else {
    scheme = "http";
    front = net.createServer(netOptions, (socket) => {
      let seen = Buffer.alloc(0);
      let decided = false;
      // Until the first bytes decide, nothing else watches this socket: silence or half a preface is cut here.
      const firstBytes = setTimeout(() => afterPendingInput(() => decided || socket.destroy()), limits.headersTimeoutMs);
      const onData = (chunk: Buffer) => {
        seen = Buffer.concat([seen, chunk]);
        const n = Math.min(seen.length, H2_PREFACE.length);
        const isH2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
        if (isH2 && seen.length < H2_PREFACE.length) return; // wait for the whole preface
        decided = true;
        clearTimeout(firstBytes);
        socket.off("data", onData);
        socket.pause();
        // Both servers take the sniffed bytes back from the socket's buffer: node:http reads through the
        // stream interface; node:http2 reads the native handle directly and first takes what is buffered
        // (node >= 15), so h2c runs on the native socket, not on a JS stream wrapped around it.
        socket.unshift(seen);
        if (isH2) {
          h2.emit("connection", socket);
        } else {
          h1.emit("connection", socket);
          socket.resume();
        }
      };
      socket.on("data", onData);
      socket.once("close", () => clearTimeout(firstBytes));
      socket.on("error", () => socket.destroy());
    });
  }
  // A session is first seen at its session event or at its first stream, whichever comes first.
  const seen = (s: http2.ServerHttp2Session): SessionWatch => {
    if (!h2Sessions.has(s)) {
      h2Sessions.add(s);
      noteSessionAddress(s);
      s.once("close", () => h2Sessions.delete(s));
    }
    return SessionWatch.of(s, limits);
  };
  h2.on("session", seen);
  // A stream already reset by its client (e.g. a proxy that cancelled it) has no session any more: nothing to count.
  h2.on("stream", (stream: http2.ServerHttp2Stream) => stream.session && seen(stream.session as http2.ServerHttp2Session).streamOpened(stream));
  // Registered after the server's own connection listener: a socket over a cap is destroyed before it is read.
  front.on("connection", (s: net.Socket) => {
    if (!caps.admit(s)) {
      s.destroy();
      return;
    }
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
      h1.closeIdleConnections();
      for (const s of h2Sessions) s.close();
      const timer = setTimeout(() => {
        for (const s of h2Sessions) s.destroy();
        for (const s of sockets) s.destroy();
      }, graceMs);
      h1.close();
      await closed;
      clearTimeout(timer);
    },
  };
}
