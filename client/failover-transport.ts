import type { DescMessage, DescMethodStreaming, DescMethodUnary, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type StreamResponse, type Transport, type UnaryResponse } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import type { TokenProvider } from "./bearer.js";
import { createTransport } from "./transport.js";

export interface FailoverTransportOptions {
  /** Base URLs in order of preference, e.g. ["http://10.0.0.11:4150", "http://10.0.0.12:4150"]. */
  endpoints: readonly string[];
  token?: string | TokenProvider;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/**
 * A silent connection is PINGed after this long; unanswered within
 * PING_TIMEOUT_MS it is taken as dead. A leaf switch that loses power sends
 * no reset, and a Wait stream through it would otherwise hang until TCP gives
 * up (many minutes) instead of failing over.
 */
const PING_INTERVAL_MS = 15_000;
const PING_TIMEOUT_MS = 10_000;

/** The call's extra headers, as the Transport interface types them. */
type Header = Parameters<Transport["unary"]>[3];

interface Endpoint {
  readonly url: string;
  readonly transport: Transport;
}

/** Node's codes for a connection that could not be made or broke under a call. */
const CONNECTION_ERRORS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_HTTP2_STREAM_CANCEL",
]);

function nodeCodes(err: unknown): string[] {
  const codes: string[] = [];
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
  }
  return codes;
}

/**
 * Whether a call failed because its endpoint is gone rather than because the
 * control plane answered: Unavailable (connection refused, or a metal-core
 * that lost its own upstream), a connection that broke under the call (Node's
 * HTTP/2 client ends the open streams of a closed session with CANCEL, which
 * arrives as Canceled although the caller cancelled nothing), or a stream the
 * server refused unprocessed (REFUSED_STREAM, a session that was going away).
 * The caller's own cancel or deadline is never one.
 */
function endpointGone(err: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted) return false;
  const ce = ConnectError.from(err);
  if (ce.code === Code.Unavailable || ce.code === Code.Canceled) return true;
  if (ce.rawMessage.includes("REFUSED_STREAM")) return true;
  return nodeCodes(err).some((c) => CONNECTION_ERRORS.has(c));
}

/** The error as callers should see it: an endpoint that went away is Unavailable, whatever Node's HTTP/2 client made of it. */
function unavailable(err: unknown, url: string): ConnectError {
  const ce = ConnectError.from(err);
  if (ce.code === Code.Unavailable) return ce;
  return new ConnectError(`${url}: ${ce.rawMessage}`, Code.Unavailable, ce.metadata, undefined, err);
}

/**
 * A gRPC (HTTP/2) transport over several equivalent endpoints: metal-hammer's
 * path to the control plane through the metal-cores of its two leaves.
 *
 * Calls go to the current endpoint. A call that fails with Unavailable before
 * any response arrived (connection refused or reset, endpoint gone; see
 * endpointGone) is tried on the next endpoint, each endpoint at most once per
 * call, and the last error is thrown (as Unavailable) when all failed; the
 * endpoint that answered becomes the current one. A server stream that breaks
 * that way after it started is not resumed (its caller reopens it) and ends
 * with Unavailable, and its endpoint is left so that the next call starts on
 * the next one.
 *
 * At most once per endpoint is not exactly once: a unary call whose first
 * endpoint forwarded it to the control plane and then died before answering
 * reaches the control plane a second time through the next endpoint. Only
 * callers whose calls are idempotent or tolerate a repeat may use this
 * transport; metal-hammer's are (Register, events, InstallationSucceeded,
 * the reads of images and layouts; a repeated Wait is a reconnect).
 *
 * Client and bidi streams cannot be replayed (their input is consumed as it
 * is sent): they go to the current endpoint only, and a failure moves the
 * current endpoint on for the next call.
 */
export function createFailoverTransport(opts: FailoverTransportOptions): Transport {
  if (opts.endpoints.length === 0) throw new Error("a failover transport needs at least one endpoint");
  const log = opts.log ?? (() => {});
  const endpoints: Endpoint[] = opts.endpoints.map((url) => ({
    url,
    transport: createTransport({ baseUrl: url, token: opts.token, sessionManager: new Http2SessionManager(url, { pingIntervalMs: PING_INTERVAL_MS, pingTimeoutMs: PING_TIMEOUT_MS }) }),
  }));
  let current = 0;

  /** Leaves endpoint `index` for the next one, unless another call has already moved on. */
  const leave = (index: number, err: unknown) => {
    if (current !== index || endpoints.length === 1) return;
    current = (index + 1) % endpoints.length;
    log("endpoint unavailable, switching", { from: endpoints[index]!.url, to: endpoints[current]!.url, err: ConnectError.from(err).rawMessage });
  };

  /** Runs `call` on the current endpoint, then on each next one while they fail with Unavailable. */
  async function withFailover<R>(signal: AbortSignal | undefined, call: (e: Endpoint, index: number) => Promise<R>): Promise<R> {
    const first = current;
    let lastErr: unknown;
    for (let i = 0; i < endpoints.length; i++) {
      const index = (first + i) % endpoints.length;
      try {
        const res = await call(endpoints[index]!, index);
        current = index;
        return res;
      } catch (err) {
        // A caller that gave up (cancel, deadline) is answered as such, not retried elsewhere.
        if (!endpointGone(err, signal)) throw err;
        lastErr = unavailable(err, endpoints[index]!.url);
        leave(index, err);
      }
    }
    throw lastErr;
  }

  /** What is left of the caller's timeout for a later attempt (the timeout bounds the whole call). */
  const remaining = (deadline: number | undefined): number | undefined => (deadline === undefined ? undefined : Math.max(1, deadline - Date.now()));

  return {
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: Header,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const deadline = timeoutMs === undefined || timeoutMs <= 0 ? undefined : Date.now() + timeoutMs;
      return withFailover(signal, (e) => e.transport.unary(method, signal, remaining(deadline) ?? timeoutMs, header, input, contextValues));
    },

    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: Header,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      const deadline = timeoutMs === undefined || timeoutMs <= 0 ? undefined : Date.now() + timeoutMs;
      const watch = (res: StreamResponse<I, O>, index: number): StreamResponse<I, O> => ({
        ...res,
        message: watched(res.message, (err) => {
          if (!endpointGone(err, signal)) return err;
          leave(index, err);
          return unavailable(err, endpoints[index]!.url);
        }),
      });
      if (method.methodKind !== "server_streaming") {
        const index = current;
        try {
          return watch(await endpoints[index]!.transport.stream(method, signal, timeoutMs, header, input, contextValues), index);
        } catch (err) {
          if (!endpointGone(err, signal)) throw err;
          leave(index, err);
          throw unavailable(err, endpoints[index]!.url);
        }
      }
      // A server stream's input is its one request: read once, sent again to the next endpoint if need be.
      const requests: MessageInitShape<I>[] = [];
      for await (const r of input) requests.push(r);
      return withFailover(signal, async (e, index) => watch(await e.transport.stream(method, signal, remaining(deadline) ?? timeoutMs, header, replay(requests), contextValues), index));
    },
  };
}

async function* replay<T>(items: readonly T[]): AsyncIterable<T> {
  yield* items;
}

/** The stream's messages as they are; an error that ends them goes through `onError`, which returns what to throw. */
async function* watched<T>(messages: AsyncIterable<T>, onError: (err: unknown) => unknown): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (err) {
    throw onError(err);
  }
}
