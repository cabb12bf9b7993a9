import http2 from "node:http2";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type ConnectRouterOptions, type ContextValues, createConnectRouter, createContextValues } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { binaryChecked } from "./binary-check.js";
import { depthChecked } from "./json-depth.js";
import type { NodeHandler } from "./node-handler.js";
import { connectionOfRequest, kConnection } from "./peer.js";
import { writeRefusal } from "./refusal.js";

/** Why a call can never pass, decided from its method and headers alone (see refusalBeforeBody in interceptors/auth.ts). */
export type EarlyCheck = (method: DescMethod, authorization: string | undefined, values: ContextValues) => Promise<ConnectError | undefined>;

export interface ConnectHandlerOptions extends ConnectRouterOptions {
  routes: (router: ConnectRouter) => void;
  /** Requests for no known method (e.g. /metrics). */
  fallback: NodeHandler;
  /** Runs before a byte of the body is read; a refusal is the call's answer. */
  earlyCheck: EarlyCheck;
  /** A handler failed in a way Connect could not answer (the client is usually gone). */
  onError: (err: unknown, method: DescMethod) => void;
  /**
   * An HTTP/2 request of a unary or server-streaming method must have arrived
   * completely within this, or its stream is reset (node:http enforces the
   * same for HTTP/1.1; client and bidi streams send for as long as they live).
   */
  requestTimeoutMs: number;
}

/** Resets an HTTP/2 request's stream if its body has not ended within `ms`. */
function limitArrival(req: http2.Http2ServerRequest, ms: number): void {
  if (req.complete) return;
  const timer = setTimeout(() => {
    if (!req.complete) req.stream.close(http2.constants.NGHTTP2_CANCEL);
  }, ms);
  timer.unref();
  const done = () => clearTimeout(timer);
  req.once("end", done);
  req.stream.once("close", done);
}

/** JSON request encodings, and whether their body is a stream of enveloped messages. */
const JSON_UNARY = /^application\/json([;\s]|$)/i;
const JSON_ENVELOPED = /^application\/(connect|grpc|grpc-web)\+json([;\s]|$)/i;
/** Binary request encodings, likewise. */
const BINARY_UNARY = /^application\/proto([;\s]|$)/i;
const BINARY_ENVELOPED = /^application\/(connect\+proto|grpc(-web)?(\+proto)?)([;\s]|$)/i;

/** Whether a unary body is compressed as a whole (enveloped messages say so in their flags). */
const bodyCompressed = (headers: NodeJS.Dict<string | string[]>) => {
  const v = headers["content-encoding"];
  return typeof v === "string" && v !== "" && v.toLowerCase() !== "identity";
};

/** Compressed JSON could not be checked for depth before it is parsed, so it is not taken. */
function compressedJson(headers: NodeJS.Dict<string | string[]>, contentType: string, enveloped: boolean): ConnectError | undefined {
  const names = enveloped ? ["connect-content-encoding", "grpc-encoding"] : ["content-encoding"];
  const compressed = names.some((n) => {
    const v = headers[n];
    return typeof v === "string" && v !== "" && v.toLowerCase() !== "identity";
  });
  return compressed ? new ConnectError(`compressed ${contentType} requests are not accepted: send JSON uncompressed, or use the binary encoding`, Code.Unimplemented) : undefined;
}

/**
 * What @connectrpc/connect-node's connectNodeAdapter does (route by path,
 * hand the request to Connect's universal handler, write its response), plus
 * what must happen before Connect reads a request body:
 * - binary messages are decoded once before Connect does, so that garbage is
 *   InvalidArgument rather than Connect's Internal;
 * - the early check (an unauthenticated call to a non-public method is
 *   answered without its body being read: a 4 MiB body costs nothing then);
 * - JSON bodies are checked for nesting depth while they are read, before
 *   JSON.parse sees them, and compressed JSON is refused;
 * - the call's connection goes into its context values (stream limits).
 */
export function createConnectHandler(options: ConnectHandlerOptions): NodeHandler {
  const { routes, fallback, earlyCheck, onError, requestTimeoutMs, ...routerOptions } = options;
  const readMaxBytes = routerOptions.readMaxBytes ?? 0xffffffff;
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...routerOptions });
  routes(router);
  const byPath = new Map(router.handlers.map((h) => [h.requestPath, h]));

  return (req, res) => {
    const uHandler = byPath.get(req.url?.split("?", 2)[0] ?? "");
    if (!uHandler) {
      fallback(req, res);
      return;
    }
    const kind = uHandler.method.methodKind;
    if (req.httpVersionMajor === 2 && requestTimeoutMs > 0 && (kind === "unary" || kind === "server_streaming")) {
      limitArrival(req as http2.Http2ServerRequest, requestTimeoutMs);
    }
    const authorization = req.headers.authorization;
    const contentType = req.headers["content-type"] ?? "";
    void (async () => {
      try {
        const enveloped = JSON_ENVELOPED.test(contentType);
        const json = enveloped || JSON_UNARY.test(contentType);
        const values = createContextValues().set(kConnection, connectionOfRequest(req));
        const refusal = (await earlyCheck(uHandler.method, authorization, values)) ?? (json ? compressedJson(req.headers, contentType, enveloped) : undefined);
        if (refusal) {
          if (!res.headersSent && !res.writableEnded) writeRefusal(res, contentType, refusal);
          return;
        }
        const uReq = universalRequestFromNodeRequest(req, res, undefined, values);
        if (typeof uReq.body === "object" && uReq.body !== null && Symbol.asyncIterator in uReq.body) {
          const body = uReq.body as AsyncIterable<Uint8Array>;
          if (json) uReq.body = depthChecked(body, enveloped, readMaxBytes);
          else if (BINARY_ENVELOPED.test(contentType)) uReq.body = binaryChecked(body, uHandler.method.input, true, readMaxBytes);
          else if (BINARY_UNARY.test(contentType) && !bodyCompressed(req.headers)) uReq.body = binaryChecked(body, uHandler.method.input, false, readMaxBytes);
        }
        await universalResponseToNodeResponse(await uHandler(uReq), res);
      } catch (err) {
        if (ConnectError.from(err).code !== Code.Aborted) onError(err, uHandler.method);
        if (!res.headersSent) res.destroy();
      }
    })();
  };
}
