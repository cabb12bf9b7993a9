import http2 from "node:http2";
import type { AddressInfo } from "node:net";

/**
 * A bare stand-in for metal-core's machine proxy (edge/core/machine-proxy.ts):
 * an h2c listener that forwards every stream, headers (with the caller's
 * Authorization), body and trailers as they are, on ONE HTTP/2 connection to
 * the control plane, with none of the real proxy's checks. The
 * partition-boundary bench uses it when BENCH_FORWARDING_PROXY=1 (or when the
 * tree has no machine-proxy.ts), to tell what the hop itself costs from what
 * metal-core's proxy costs on top of it.
 */
export interface ForwardingProxy {
  endpoint: string;
  close(): Promise<void>;
}

/** Connection-specific headers that HTTP/2 forbids to forward, and the pseudo-headers the upstream session sets itself. */
const NOT_FORWARDED = new Set([":scheme", ":authority", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"]);

function forwardable(headers: http2.IncomingHttpHeaders): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !NOT_FORWARDED.has(k)) out[k] = v;
  return out;
}

export async function startForwardingProxy(opts: { upstreamUrl: string; listen: string }): Promise<ForwardingProxy> {
  let upstream: http2.ClientHttp2Session | undefined;
  // Opened on the first call and again after it is lost, as a metal-core would.
  const session = () => {
    if (!upstream || upstream.closed || upstream.destroyed) {
      const s = http2.connect(opts.upstreamUrl);
      s.on("error", () => s.destroy());
      upstream = s;
    }
    return upstream;
  };
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => (sessions.add(s), s.once("close", () => sessions.delete(s))));
  server.on("stream", (down, headers) => {
    let up: http2.ClientHttp2Stream;
    try {
      up = session().request(forwardable(headers));
    } catch {
      down.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    let trailers: http2.IncomingHttpHeaders | undefined;
    down.pipe(up);
    up.on("response", (h, flags) => {
      if (down.destroyed) return;
      // A trailers-only answer (gRPC errors) is one HEADERS frame that ends the stream.
      const endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      down.respond(forwardable(h), { endStream, waitForTrailers: !endStream });
      if (!endStream) up.pipe(down);
    });
    up.on("trailers", (t) => (trailers = t));
    down.on("wantTrailers", () => down.sendTrailers(trailers ? forwardable(trailers) : { "grpc-status": "14", "grpc-message": "upstream ended without a status" }));
    up.on("error", () => !down.destroyed && down.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    // The hammer went away: so does its call upstream (the server ends its Wait).
    down.on("close", () => !up.destroyed && up.close(http2.constants.NGHTTP2_CANCEL));
    down.on("error", () => undefined);
  });
  server.on("sessionError", () => undefined);
  const [host, port] = [opts.listen.slice(0, opts.listen.lastIndexOf(":")), Number(opts.listen.slice(opts.listen.lastIndexOf(":") + 1))];
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const address = server.address() as AddressInfo;
  return {
    endpoint: `http://${address.address}:${address.port}`,
    async close() {
      upstream?.destroy();
      const closed = new Promise((r) => server.close(r));
      for (const s of sessions) s.destroy();
      await closed;
    },
  };
}
