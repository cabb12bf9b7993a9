import type { EventEmitter } from "node:events";
import http2 from "node:http2";
import type { Readable } from "node:stream";
import { type DescMessage, fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * One gRPC call's HTTP/2 stream as the lean path uses it, whether it came
 * through Node's compatibility API (TLS listener) or raw (plain listener).
 */
export interface CallIO {
  /** Where the request body arrives. */
  readonly body: Readable;
  /** Emits "drain" and "close" for the response. */
  readonly events: EventEmitter;
  readonly destroyed: boolean;
  /** The connection the call came on (stream limits count per connection). */
  readonly connection: object | undefined;
  respond(headers: Record<string, string>): void;
  write(chunk: Buffer): boolean;
  /** Ends the response with these trailers. */
  finish(trailers: Record<string, string>): void;
  destroy(): void;
}

/** A stream Node's HTTP/2 compatibility API already wrapped. */
export class CompatIO implements CallIO {
  constructor(
    private readonly req: http2.Http2ServerRequest,
    private readonly res: http2.Http2ServerResponse,
  ) {}
  get body() {
    return this.req;
  }
  get events() {
    return this.res;
  }
  get destroyed() {
    return this.res.destroyed;
  }
  get connection() {
    return this.req.stream.session;
  }
  respond(headers: Record<string, string>) {
    this.res.writeHead(200, headers);
  }
  write(chunk: Buffer) {
    return this.res.write(chunk);
  }
  finish(trailers: Record<string, string>) {
    this.res.addTrailers(trailers);
    this.res.end();
  }
  destroy() {
    this.res.destroy();
  }
}

const ignore = () => {};

/** A raw ServerHttp2Stream: no request and response objects around it, which is most of what a stream costs. */
/** Resets a stream whose response is complete but whose request is not (see RawIO.finish). */
function closeUnfinished(stream: http2.ServerHttp2Stream): void {
  if (!stream.closed && !stream.readableEnded) stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

export class RawIO implements CallIO {
  constructor(private readonly stream: http2.ServerHttp2Stream) {
    // A reset by the client arrives as an error event; without a listener it would take the process down.
    // The call learns of it from "close".
    stream.on("error", ignore);
  }
  get body() {
    return this.stream;
  }
  get events() {
    return this.stream;
  }
  get destroyed() {
    return this.stream.destroyed || this.stream.closed;
  }
  get connection() {
    return this.stream.session;
  }
  respond(headers: Record<string, string>) {
    this.stream.respond({ ":status": 200, ...headers }, { waitForTrailers: true });
  }
  write(chunk: Buffer) {
    return this.stream.write(chunk);
  }
  finish(trailers: Record<string, string>) {
    this.stream.once("wantTrailers", () => {
      this.stream.sendTrailers(trailers);
      // Answered before the request ended (refused, timed out): the rest is not wanted, and the stream
      // must not stay open half-way for a peer that never finishes sending (RFC 9113 §8.1: RST_STREAM NO_ERROR).
      // Not before the trailers are out: on a native socket nghttp2 would send the RST_STREAM first in the
      // same write, and the peer would never see the status; the write runs before the next immediate.
      if (!this.stream.readableEnded) setImmediate(closeUnfinished, this.stream);
    });
    this.stream.end();
  }
  destroy() {
    this.stream.destroy();
  }
}

/** Reads the request body and returns its one message; a server-streaming call sends exactly one. */
export async function readSingleMessage<I extends DescMessage>(body: Readable, schema: I, maxBytes: number, signal: AbortSignal, timeoutMs = 0) {
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
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
      clearTimeout(timer);
      body.off("data", onData).off("end", onEnd).off("error", fail);
      signal.removeEventListener("abort", onAbort);
    };
    if (signal.aborted) return onAbort();
    // An empty body can have ended before anyone listened (node:http2 ends it at once): nothing more will come.
    if (body.readableEnded) return onEnd();
    body.on("data", onData).on("end", onEnd).on("error", fail);
    signal.addEventListener("abort", onAbort, { once: true });
    // A request that never finishes arriving would hold its stream (and what came of it) for good.
    if (timeoutMs > 0) timer = setTimeout(() => fail(new ConnectError(`the request did not arrive completely within ${timeoutMs} ms`, Code.DeadlineExceeded)), timeoutMs);
  });
  const message = Buffer.concat(chunks);
  if (message.length < 5) throw new ConnectError("protocol error: missing input message for server-streaming method", Code.Unimplemented);
  if ((message[0]! & 0b1) === 1) throw new ConnectError("protocol error: received compressed message without grpc-encoding", Code.Internal);
  const length = message.readUInt32BE(1);
  if (length > maxBytes) throw new ConnectError(`message size ${length} is larger than configured readMaxBytes ${maxBytes}`, Code.ResourceExhausted);
  if (message.length < 5 + length) throw new ConnectError("protocol error: promised message size does not match the body", Code.InvalidArgument);
  if (message.length > 5 + length) throw new ConnectError("protocol error: received extra input message for server-streaming method", Code.Unimplemented);
  try {
    return fromBinary(schema, message.subarray(5));
  } catch (err) {
    throw new ConnectError(`parse binary: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument);
  }
}

/** The envelope of an empty message (a keepalive), shared by every stream: it is never written to. */
const EMPTY_ENVELOPE = Buffer.alloc(5);

/** A gRPC length-prefixed message, uncompressed. */
export function envelope(payload: Uint8Array): Buffer {
  if (payload.length === 0) return EMPTY_ENVELOPE;
  const out = Buffer.allocUnsafe(5 + payload.length);
  out[0] = 0;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, 5);
  return out;
}

/** Resolves when the response can take more, or when the call is over. */
export function writable(events: EventEmitter, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      events.off("drain", done).off("close", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    events.once("drain", done).once("close", done);
    signal.addEventListener("abort", done, { once: true });
  });
}
