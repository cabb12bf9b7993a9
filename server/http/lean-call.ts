import type http2 from "node:http2";
import { create, type DescMethodServerStreaming, isMessage, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextKey, type ContextValues, type HandlerContext, type Interceptor, type StreamRequest, type StreamResponse } from "@connectrpc/connect";
import { contentTypeProto, parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { EarlyCheck } from "./connect-handler.js";
import { type CallIO, envelope, readSingleMessage, writable } from "./grpc-wire.js";
import { kConnection } from "./peer.js";

export type StreamImpl = (request: any, context: HandlerContext) => AsyncIterable<any>;

export interface LeanOptions {
  /** The same interceptors, in the same order, as the Connect handler's: auth and logging stay one piece of code. */
  interceptors: readonly Interceptor[];
  shutdownSignal: AbortSignal;
  /** Largest request message accepted. */
  readMaxBytes: number;
  /** Runs before the request body is read, as for every other call (see connect-handler.ts); a refusal is the call's status. */
  earlyCheck?: EarlyCheck;
  /** The request message must have arrived within this (0: no limit); see METAL_REQUEST_TIMEOUT. */
  requestTimeoutMs?: number;
}

/** The request's headers without HTTP/2 pseudo-headers, flat (name, value, name, value, ...): the smallest form to keep. */
function flatHeaders(headers: http2.IncomingHttpHeaders): string[] {
  const flat: string[] = [];
  for (const [k, v] of Object.entries(headers)) {
    if (k.startsWith(":") || v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) flat.push(k, one);
  }
  return flat;
}

/** Connect's context values (get, set, delete by key), with its methods on the prototype instead of three closures per call. */
class Values implements ContextValues {
  private readonly byId: Record<symbol, unknown> = {};
  get<T>(key: ContextKey<T>): T {
    return key.id in this.byId ? (this.byId[key.id] as T) : key.defaultValue;
  }
  set<T>(key: ContextKey<T>, value: T): this {
    this.byId[key.id] = value;
    return this;
  }
  delete(key: ContextKey<unknown>): this {
    delete this.byId[key.id];
    return this;
  }
}

const asObject = (h: Headers) => Object.fromEntries(h.entries());

/** The open calls of each shutdown signal, aborted together by one listener on it instead of one listener per call. */
const openCalls = new WeakMap<AbortSignal, Set<LeanCall>>();

function callsEndedBy(signal: AbortSignal): Set<LeanCall> {
  let calls = openCalls.get(signal);
  if (!calls) {
    const all = new Set<LeanCall>();
    signal.addEventListener("abort", () => [...all].forEach((c) => c.abort(signal.reason)), { once: true });
    openCalls.set(signal, (calls = all));
  }
  return calls;
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
  readonly responseTrailer = new Headers({ "grpc-status": "0" });
  readonly values: ContextValues = new Values();
  private readonly controller = new AbortController();
  private readonly deadline?: number;
  private readonly timer?: NodeJS.Timeout;
  private readonly calls: Set<LeanCall> | undefined;
  private header: Headers | undefined;
  private sentHeader: Headers | undefined;
  private readonly flat: string[];
  private readonly authority: string;

  constructor(
    readonly method: DescMethodServerStreaming,
    headers: http2.IncomingHttpHeaders,
    shutdownSignal: AbortSignal,
    timeoutMs: number | undefined,
  ) {
    this.service = method.parent;
    this.signal = this.controller.signal;
    this.flat = flatHeaders(headers);
    this.authority = headers[":authority"] ?? "localhost";
    if (shutdownSignal.aborted) this.abort(shutdownSignal.reason);
    else (this.calls = callsEndedBy(shutdownSignal)).add(this);
    if (timeoutMs !== undefined && !this.signal.aborted) {
      this.deadline = Date.now() + timeoutMs;
      this.timer = setTimeout(() => this.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeoutMs);
    }
  }

  /**
   * Built from the stream's headers when asked, and let go of once the call
   * is open (`settle`): the interceptors read it while the call opens, an
   * open stream rarely does, and a Headers object is ~0.8 KiB per stream.
   */
  get requestHeader(): Headers {
    if (this.header) return this.header;
    const h = new Headers();
    for (let i = 0; i < this.flat.length; i += 2) h.append(this.flat[i]!, this.flat[i + 1]!);
    return (this.header = h);
  }

  /** One request header, read from the flat list (no Headers object for it). */
  headerValue(name: string): string | undefined {
    for (let i = 0; i < this.flat.length; i += 2) if (this.flat[i] === name) return this.flat[i + 1];
    return undefined;
  }

  get url(): string {
    return `http://${this.authority}/${this.service.typeName}/${this.method.name}`;
  }

  /** Until the headers are on the wire; after that, changes to them could not be sent anyway. */
  get responseHeader(): Headers {
    return (this.sentHeader ??= new Headers({ "content-type": contentTypeProto }));
  }

  /** The call is open: what only opening it needed can go. */
  settle(): void {
    this.header = undefined;
  }

  /** The response headers are sent: their object can go. */
  headersSent(): void {
    this.sentHeader = undefined;
  }

  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline - Date.now();
  }

  /** Ends the call's signal (idempotent) and lets go of the timer and of its place among the open calls. */
  abort(reason?: unknown): void {
    clearTimeout(this.timer);
    this.calls?.delete(this);
    if (!this.signal.aborted) this.controller.abort(reason);
  }
}

async function* single<T>(value: T): AsyncGenerator<T> {
  yield value;
}

async function firstOf<T>(stream: AsyncIterable<T>): Promise<T> {
  for await (const v of stream) return v;
  throw new ConnectError("protocol error: missing input message for server-streaming method", Code.Unimplemented);
}

/** The interceptors passed the call on as it came: the implementation can have the call's own context. */
const sameAs = (ctx: LeanCall, r: StreamRequest) => r.header === ctx.requestHeader && r.signal === ctx.signal && r.contextValues === ctx.values;

/**
 * Reads the request and runs it through the interceptors to the
 * implementation's response stream. A function of its own so that the
 * interceptor chain and the request are garbage once the stream is open.
 */
async function openCall(method: DescMethodServerStreaming, impl: StreamImpl, io: CallIO, ctx: LeanCall, options: LeanOptions): Promise<{ messages: AsyncIterable<any>; trailer: Headers }> {
  const refusal = await options.earlyCheck?.(method, ctx.headerValue("authorization"), ctx.values);
  if (refusal) throw refusal;
  ctx.values.set(kConnection, io.connection);
  const input = await readSingleMessage(io.body, method.input, options.readMaxBytes, ctx.signal, options.requestTimeoutMs);
  const invoke = async (r: StreamRequest): Promise<StreamResponse> => ({
    stream: true,
    service: method.parent,
    method,
    header: ctx.responseHeader,
    trailer: ctx.responseTrailer,
    message: impl(
      await firstOf(r.message),
      sameAs(ctx, r) ? ctx : { ...ctx, url: ctx.url, responseHeader: ctx.responseHeader, timeoutMs: () => ctx.timeoutMs(), requestHeader: r.header, signal: r.signal, values: r.contextValues },
    ),
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
  // Only these two outlive the opening; the response object (and the headers it names) does not.
  return { messages: response.message, trailer: response.trailer };
}

/**
 * Runs one server-streaming call: its one request message through the
 * interceptors into the implementation, each response message onto the
 * stream, and the outcome as gRPC status trailers (Connect's encoder).
 */
export function serveLeanCall(method: DescMethodServerStreaming, impl: StreamImpl, io: CallIO, headers: http2.IncomingHttpHeaders, options: LeanOptions): Promise<void> {
  // Not async itself: the stream's header object (~0.7 KiB) must not stay alive in a suspended frame for the stream's life.
  try {
    const grpcTimeout = headers["grpc-timeout"];
    const timeout = parseTimeout(typeof grpcTimeout === "string" ? grpcTimeout : null, Number.MAX_SAFE_INTEGER);
    const ctx = new LeanCall(method, headers, options.shutdownSignal, timeout.timeoutMs);
    return runLeanCall(method, impl, io, ctx, timeout.error, options);
  } catch (err) {
    return Promise.reject(err);
  }
}

async function runLeanCall(method: DescMethodServerStreaming, impl: StreamImpl, io: CallIO, ctx: LeanCall, timeoutError: ConnectError | undefined, options: LeanOptions): Promise<void> {
  const gone = () => ctx.abort(new ConnectError("the client ended the call", Code.Canceled));
  io.events.on("close", gone);
  let headersSent = false;
  try {
    if (timeoutError) throw timeoutError;
    const { messages, trailer } = await openCall(method, impl, io, ctx, options);
    ctx.settle();
    const output = method.output;
    for await (const m of messages) {
      if (io.destroyed || ctx.signal.aborted) break;
      if (!headersSent) {
        io.respond(asObject(ctx.responseHeader));
        ctx.headersSent();
        headersSent = true;
      }
      if (!io.write(envelope(toBinary(output, isMessage(m, output) ? m : create(output, m))))) await writable(io.events, ctx.signal);
    }
    if (trailer !== ctx.responseTrailer) trailer.forEach((v, k) => ctx.responseTrailer.set(k, v));
    // The implementation ends quietly when its signal aborts; a passed deadline is still the caller's error.
    const reason: unknown = ctx.signal.reason;
    if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) throw reason;
  } catch (err) {
    setTrailerStatus(ctx.responseTrailer, err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err));
  } finally {
    io.events.off("close", gone);
    ctx.abort();
  }
  if (io.destroyed) return;
  if (!headersSent) io.respond(asObject(ctx.responseHeader));
  io.finish(asObject(ctx.responseTrailer));
}
