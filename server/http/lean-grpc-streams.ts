import type http2 from "node:http2";
import type { DescMethodServerStreaming } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { CompatIO, RawIO } from "./grpc-wire.js";
import { type LeanOptions, type StreamImpl, serveLeanCall } from "./lean-call.js";
import type { NodeHandler, StreamTaker } from "./node-handler.js";

export type { LeanOptions };

interface Route {
  method: DescMethodServerStreaming;
  impl?: StreamImpl;
}

/** `application/grpc` and `application/grpc+proto`; JSON, gRPC-Web and the Connect protocol go to Connect. */
const GRPC_PROTO = /^application\/grpc(\+proto)?(;.*)?$/i;

/**
 * A lean gRPC path for server-streaming methods that thousands of daemons hold
 * open at once (BootService.Wait: one stream per waiting machine).
 *
 * Measured here, an idle stream through Connect's Node handler costs ~33 KiB
 * of V8 heap: its pipeline is a chain of down-levelled async generators,
 * each a handful of closures and a prototype of its own. The same stream on
 * the HTTP/2 compatibility layer costs ~6 KiB, raw ~1.6 KiB. So for plain
 * binary gRPC (what metal-hammer speaks) the listed methods are served here,
 * raw where the listener allows it (`takeStream`, plain h2c) and on the
 * compatibility layer otherwise (`handler`, TLS); every other protocol and
 * encoding, and every other method, still goes to Connect.
 *
 * What must not differ does not: the call runs through the very interceptors
 * given to Connect (authentication, authorization, request ids, metrics), the
 * implementation is the one registered on the router, the handler context
 * has Connect's semantics (deadline from grpc-timeout, shutdown, client going
 * away), and status trailers are written by Connect's encoder.
 */
export class LeanGrpcStreams {
  private readonly routes = new Map<string, Route>();

  constructor(methods: readonly DescMethodServerStreaming[]) {
    for (const method of methods) this.routes.set(`/${method.parent.typeName}/${method.name}`, { method });
  }

  /** A router that registers as `router` does and also keeps the implementations of the lean methods. */
  capture(router: ConnectRouter): ConnectRouter {
    const service: ConnectRouter["service"] = (desc, impl, options) => {
      for (const method of desc.methods) {
        const route = this.routes.get(`/${desc.typeName}/${method.name}`);
        const fn = (impl as Record<string, unknown>)[method.localName];
        if (route && typeof fn === "function") route.impl = fn.bind(impl) as StreamImpl;
      }
      return router.service(desc, impl, options);
    };
    return { ...router, service };
  }

  /** The lean route of a call with these headers, if it is one: an implemented method, binary gRPC, no compression. */
  private routeOf(headers: http2.IncomingHttpHeaders): Required<Route> | undefined {
    if (headers[":method"] !== "POST") return undefined;
    const route = this.routes.get(headers[":path"] ?? "");
    const encoding = headers["grpc-encoding"];
    if (!route?.impl || !GRPC_PROTO.test(headers["content-type"] ?? "") || (encoding !== undefined && encoding !== "identity")) return undefined;
    return route as Required<Route>;
  }

  /** Serves the lean methods on the compatibility API and hands every other request to `fallback`. */
  handler(fallback: NodeHandler, options: LeanOptions): NodeHandler {
    return (req, res) => {
      const route = req.httpVersionMajor === 2 ? this.routeOf(req.headers) : undefined;
      if (!route) return fallback(req, res);
      const io = new CompatIO(req as http2.Http2ServerRequest, res as http2.Http2ServerResponse);
      // Errors of the call become its status; this only catches a failing write of the status itself.
      serveLeanCall(route.method, route.impl, io, req.headers, options).catch(() => io.destroy());
    };
  }

  /** Takes the raw HTTP/2 streams of lean calls, before any compatibility object exists for them. */
  streamTaker(options: LeanOptions): StreamTaker {
    return (stream, headers) => {
      const route = this.routeOf(headers);
      if (!route) return false;
      const io = new RawIO(stream);
      serveLeanCall(route.method, route.impl, io, headers, options).catch(() => io.destroy());
      return true;
    };
  }
}
