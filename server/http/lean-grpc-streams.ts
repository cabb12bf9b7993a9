import type http2 from "node:http2";
import { create, fromBinary, isMessage, toBinary, type DescMessage, type DescMethodServerStreaming } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  type ConnectRouter,
  type HandlerContext,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
} from "@connectrpc/connect";
import { contentTypeProto, parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { NodeHandler } from "./node-handler.js";

type StreamImpl = (request: any, context: HandlerContext) => AsyncIterable<any>;

interface Route {
  method: DescMethodServerStreaming;
  impl?: StreamImpl;
}

export interface LeanOptions {
  /** The same interceptors, in the same order, as the Connect handler's: auth and logging stay one piece of code. */
  interceptors: readonly Interceptor[];
  shutdownSignal: AbortSignal;
  /** Largest request message accepted. */
  readMaxBytes: number;
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
 * the HTTP/2 compatibility layer costs ~4 KiB. So for plain binary gRPC
 * (what metal-hammer speaks) the listed methods are served here; every other
 * protocol and encoding, and every other method, still goes to Connect.
 *
 * What must not differ does not: the call runs through the very interceptors
 * given to Connect (authentication, authorization, request ids, metrics), the
 * implementation is the one registered on the router, the handler context is
 * Connect's own (deadline from grpc-timeout, shutdown, client going away), and
 * status trailers are written by Connect's encoder.
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

  /** Serves the lean methods over plain gRPC and hands every other request to `fallback`. */
  handler(fallback: NodeHandler, options: LeanOptions): NodeHandler {
    return (req, res) => {
      const route = req.method === "POST" && req.httpVersionMajor === 2 ? this.routes.get(req.url ?? "") : undefined;
      const encoding = req.headers["grpc-encoding"];
      if (!route?.impl || !GRPC_PROTO.test(req.headers["content-type"] ?? "") || (encoding !== undefined && encoding !== "identity")) {
        fallback(req, res);
        return;
      }
      // Errors of the call become its status; this only catches a failing write of the status itself.
      serve(route.method, route.impl, req as http2.Http2ServerRequest, res as http2.Http2ServerResponse, options).catch(() => res.destroy());
    };
  }
}

/** The request's headers without HTTP/2 pseudo-headers, for the one Headers object of the call. */
function requestHeaders(req: http2.Http2ServerRequest): [string, string][] {
  const h: [string, string][] = [];
  for (const [k, v] of Object.entries(req.headers)) {
    if (k.startsWith(":") || v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) h.push([k, one]);
  }
  return h;
}

const asObject = (h: Headers) => Object.fromEntries(h.entries());

/** Reads the request body and returns its one message; a server-streaming call sends exactly one. */
async function readSingleMessage<I extends DescMessage>(req: http2.Http2ServerRequest, schema: I, maxBytes: number, signal: AbortSignal) {
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    const fail = (err: unknown) => {
      cleanup();
      reject(err);
    };
    const onAbort = () => fail(signal.reason);
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes + 5) fail(new ConnectError(`message size is larger than configured readMaxBytes ${maxBytes}`, Code.ResourceExhausted));
      else chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      req.off("data", onData).off("end", onEnd).off("error", fail);
      signal.removeEventListener("abort", onAbort);
    };
    if (signal.aborted) return onAbort();
    req.on("data", onData).on("end", onEnd).on("error", fail);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  const body = Buffer.concat(chunks);
  if (body.length < 5) throw new ConnectError("protocol error: missing input message for server-streaming method", Code.Unimplemented);
  if ((body[0]! & 0b1) === 1) throw new ConnectError("protocol error: received compressed message without grpc-encoding", Code.Internal);
  const length = body.readUInt32BE(1);
  if (length > maxBytes) throw new ConnectError(`message size ${length} is larger than configured readMaxBytes ${maxBytes}`, Code.ResourceExhausted);
  if (body.length < 5 + length) throw new ConnectError("protocol error: promised message size does not match the body", Code.InvalidArgument);
  if (body.length > 5 + length) throw new ConnectError("protocol error: received extra input message for server-streaming method", Code.Unimplemented);
  try {
    return fromBinary(schema, body.subarray(5));
  } catch (err) {
    throw new ConnectError(`parse binary: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument);
  }
}

function envelope(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out[0] = 0;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, 5);
  return out;
}

/** Resolves when the response can take more, or when the call is over. */
function writable(res: http2.Http2ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done).off("close", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    res.once("drain", done).once("close", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

async function* single<T>(value: T): AsyncGenerator<T> {
  yield value;
}

async function firstOf<T>(stream: AsyncIterable<T>): Promise<T> {
  for await (const v of stream) return v;
  throw new ConnectError("protocol error: missing input message for server-streaming method", Code.Unimplemented);
}

/**
 * The handler context of one lean call: what Connect's createHandlerContext
 * gives (deadline from grpc-timeout, shutdown, client going away all abort
 * `signal`), as one object with its methods on the prototype, because
 * thousands of these live as long as their streams.
 */
class LeanCall implements HandlerContext {
  readonly service: DescMethodServerStreaming["parent"];
  readonly requestMethod = "POST";
  readonly protocolName = "grpc";
  readonly signal: AbortSignal;
  readonly requestHeader: Headers;
  readonly responseHeader = new Headers({ "content-type": contentTypeProto });
  readonly responseTrailer = new Headers({ "grpc-status": "0" });
  readonly values = createContextValues();
  readonly url: string;
  private readonly controller = new AbortController();
  private readonly deadline?: number;
  private readonly timer?: NodeJS.Timeout;
  private readonly onShutdown: () => void;

  constructor(
    readonly method: DescMethodServerStreaming,
    req: http2.Http2ServerRequest,
    private readonly shutdownSignal: AbortSignal,
    timeoutMs: number | undefined,
  ) {
    this.service = method.parent;
    this.signal = this.controller.signal;
    this.requestHeader = new Headers(requestHeaders(req));
    this.url = `http://${req.headers[":authority"] ?? "localhost"}${req.url}`;
    this.onShutdown = () => this.abort(shutdownSignal.reason);
    if (shutdownSignal.aborted) this.abort(shutdownSignal.reason);
    else shutdownSignal.addEventListener("abort", this.onShutdown, { once: true });
    if (timeoutMs !== undefined) {
      this.deadline = Date.now() + timeoutMs;
      this.timer = setTimeout(() => this.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeoutMs);
    }
  }

  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline - Date.now();
  }

  /** Ends the call's signal (idempotent) and lets go of the timer and the shutdown listener. */
  abort(reason?: unknown): void {
    clearTimeout(this.timer);
    this.shutdownSignal.removeEventListener("abort", this.onShutdown);
    if (!this.signal.aborted) this.controller.abort(reason);
  }
}

async function serve(method: DescMethodServerStreaming, impl: StreamImpl, req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, options: LeanOptions): Promise<void> {
  const grpcTimeout = req.headers["grpc-timeout"];
  const timeout = parseTimeout(typeof grpcTimeout === "string" ? grpcTimeout : null, Number.MAX_SAFE_INTEGER);
  const ctx = new LeanCall(method, req, options.shutdownSignal, timeout.timeoutMs);
  const gone = () => ctx.abort(new ConnectError("the client ended the call", Code.Canceled));
  res.once("close", gone);
  let headersSent = false;
  try {
    if (timeout.error) throw timeout.error;
    const input = await readSingleMessage(req, method.input, options.readMaxBytes, ctx.signal);
    const invoke = async (r: StreamRequest): Promise<StreamResponse> => ({
      stream: true,
      service: method.parent,
      method,
      header: ctx.responseHeader,
      trailer: ctx.responseTrailer,
      message: impl(await firstOf(r.message), sameAs(ctx, r) ? ctx : { ...ctx, timeoutMs: () => ctx.timeoutMs(), requestHeader: r.header, signal: r.signal, values: r.contextValues }),
    });
    const next = options.interceptors.reduceRight<(r: StreamRequest) => Promise<StreamResponse>>((n, i) => i(n as never) as never, invoke);
    const response = await next({
      stream: true,
      service: method.parent,
      method,
      requestMethod: "POST",
      url: ctx.url,
      signal: ctx.signal,
      header: ctx.requestHeader,
      contextValues: ctx.values,
      message: single(input),
    });
    if (response.header !== ctx.responseHeader) response.header.forEach((v, k) => ctx.responseHeader.set(k, v));
    const output = method.output;
    for await (const m of response.message) {
      if (res.destroyed || ctx.signal.aborted) break;
      if (!headersSent) res.writeHead(200, asObject(ctx.responseHeader));
      headersSent = true;
      if (!res.write(envelope(toBinary(output, isMessage(m, output) ? m : create(output, m))))) await writable(res, ctx.signal);
    }
    if (response.trailer !== ctx.responseTrailer) response.trailer.forEach((v, k) => ctx.responseTrailer.set(k, v));
    // The implementation ends quietly when its signal aborts; a passed deadline is still the caller's error.
    const reason: unknown = ctx.signal.reason;
    if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) throw reason;
  } catch (err) {
    setTrailerStatus(ctx.responseTrailer, err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err));
  } finally {
    res.off("close", gone);
    ctx.abort();
  }
  if (res.destroyed) return;
  if (!headersSent) res.writeHead(200, asObject(ctx.responseHeader));
  res.addTrailers(asObject(ctx.responseTrailer));
  res.end();
}

/** The interceptors passed the call on as it came: the implementation can have the call's own context. */
const sameAs = (ctx: LeanCall, r: StreamRequest) => r.header === ctx.requestHeader && r.signal === ctx.signal && r.contextValues === ctx.values;
