import http2 from "node:http2";
import { Code } from "@connectrpc/connect";
import { FilesystemLayoutService } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { ImageService } from "../../gen/metal/api/v1/image_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";

export type MachineProxyLog = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/**
 * Exactly metal-hammer's methods, as gRPC paths. BootService.Boot and Dhcp are
 * pixie's (with an infra token), and every other method is no business of a
 * machine: they are answered Unimplemented and never forwarded.
 */
export const HAMMER_PATHS: ReadonlySet<string> = new Set(
  [
    BootService.method.register,
    BootService.method.wait,
    BootService.method.installationSucceeded,
    BootService.method.abortReinstall,
    BootService.method.renewCredential,
    EventService.method.send,
    ImageService.method.get,
    FilesystemLayoutService.method.get,
  ].map((m) => `/${m.parent.typeName}/${m.name}`),
);

/** Request headers a machine may send on: gRPC's own and its credential. Everything else (cookies, x-forwarded-*, custom metadata) stays here. */
const REQUEST_HEADERS = ["content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "authorization", "user-agent"];
/** Response headers and trailers passed back: gRPC's own, so nothing of the control plane's internals reaches the machine network. */
const RESPONSE_HEADERS = ["content-type", "grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-encoding", "grpc-accept-encoding"];

function pick(from: http2.IncomingHttpHeaders, names: readonly string[], into: http2.OutgoingHttpHeaders = {}): http2.OutgoingHttpHeaders {
  for (const name of names) {
    const v = from[name];
    if (v !== undefined) into[name] = v;
  }
  return into;
}

/** gRPC's percent-encoding of grpc-message: bytes outside printable ASCII, and '%' itself. */
export function encodeGrpcMessage(msg: string): string {
  let out = "";
  for (const byte of Buffer.from(msg, "utf8")) out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  return out;
}

const status = (code: Code, message: string): http2.OutgoingHttpHeaders => ({ "grpc-status": String(code), "grpc-message": encodeGrpcMessage(message) });

/** The gRPC spec's mapping of a non-200 HTTP status (from something that is not a gRPC server) to a code. */
function codeOfHttpStatus(httpStatus: number): Code {
  if (httpStatus === 400) return Code.Internal;
  if (httpStatus === 401) return Code.Unauthenticated;
  if (httpStatus === 403) return Code.PermissionDenied;
  if (httpStatus === 404) return Code.Unimplemented;
  if ([429, 502, 503, 504].includes(httpStatus)) return Code.Unavailable;
  return Code.Unknown;
}

function isGrpc(contentType: string | undefined): boolean {
  const media = contentType?.split(";")[0]?.trim().toLowerCase();
  return media === "application/grpc" || media === "application/grpc+proto";
}

/** The one HTTP/2 connection to the control plane that all machines' calls share. */
export interface Upstream {
  /** The live session, dialled now if there is none (first call, or the last one was lost). */
  session(): http2.ClientHttp2Session;
}

/** A forwarded (or refused) stream that close() must end. */
export interface OpenCall {
  /** Ends the machine's stream with Unavailable and cancels its upstream stream. */
  abandon(message: string): void;
}

export interface ForwardOptions {
  upstream: Upstream;
  /** Largest request body, in bytes on the wire (gRPC frame prefix included). */
  readMaxBytes: number;
  log: MachineProxyLog;
  /** Calls still open, so that close() can end them; each removes itself when its stream closes. */
  open: Set<OpenCall>;
}

/**
 * Forwards one machine's stream to the control plane as raw HTTP/2: headers
 * on a whitelist, the body as it came, the response's headers, body and
 * trailers back on a whitelist. No message is decoded; the control plane
 * checks the machine's credential and the request.
 *
 * Refused here, never forwarded: anything but gRPC (HTTP 415), methods other
 * than POST (HTTP 405), paths other than metal-hammer's (Unimplemented),
 * calls without a bearer credential (Unauthenticated), bodies over
 * readMaxBytes (ResourceExhausted). The body is read to its end before the
 * upstream stream is opened: every hammer method takes one request message,
 * and a machine that never finishes its request then holds only its own slot
 * (see MachineConnections), no stream at the control plane.
 */
export function forwardMachineStream(down: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, opts: ForwardOptions): void {
  down.on("error", () => {});
  if (!isGrpc(headers["content-type"])) return refuseHttp(down, 415, "metal-core's machine endpoint speaks gRPC only\n");
  if (headers[":method"] !== "POST") return refuseHttp(down, 405, "metal-core's machine endpoint takes POST only\n");
  const path = headers[":path"] ?? "";
  if (!HAMMER_PATHS.has(path)) return trailersOnly(down, status(Code.Unimplemented, `${path} is not served to machines`));
  const authorization = headers.authorization;
  if (typeof authorization !== "string" || !/^bearer\s+\S/i.test(authorization)) {
    return trailersOnly(down, status(Code.Unauthenticated, "a machine's call needs its credential: Authorization: Bearer <machine credential>"));
  }

  let up: http2.ClientHttp2Stream | undefined;
  /** Set once the machine's stream has its status (trailers-only or trailers pending): later failures change nothing. */
  let settled = false;
  let trailers: http2.OutgoingHttpHeaders | undefined;

  /** Ends the machine's call with `fail` unless it has its status already; the upstream stream is cancelled. */
  const end = (fail: http2.OutgoingHttpHeaders) => {
    if (up && !up.closed) {
      up.unpipe(down);
      up.close(NGHTTP2_CANCEL);
    }
    if (settled || down.closed) return;
    settled = true;
    if (!down.headersSent) return trailersOnly(down, fail);
    trailers = fail;
    if (!down.writableEnded) down.end();
  };
  const call: OpenCall = { abandon: (message) => end(status(Code.Unavailable, message)) };
  opts.open.add(call);

  // The machine went away (closed, reset, or its connection cut): its call upstream ends with CANCEL, so the server ends a Wait.
  down.once("close", () => {
    opts.open.delete(call);
    if (up && !up.closed) up.close(NGHTTP2_CANCEL);
  });

  const body: Buffer[] = [];
  let bytes = 0;
  down.on("data", (chunk: Buffer) => {
    if (settled) return;
    bytes += chunk.length;
    if (bytes > opts.readMaxBytes) {
      body.length = 0;
      return end(status(Code.ResourceExhausted, `request over ${opts.readMaxBytes} bytes`));
    }
    body.push(chunk);
  });
  down.once("end", () => {
    if (settled) return;
    const out = pick(headers, REQUEST_HEADERS, { ":method": "POST", ":path": path });
    try {
      up = opts.upstream.session().request(out, { endStream: false });
    } catch (err) {
      opts.log("warn", "the control plane cannot be reached", { path, error: String(err) });
      return end(status(Code.Unavailable, "metal-core cannot reach the control plane"));
    }
    relay(up);
    up.end(Buffer.concat(body, bytes));
    body.length = 0;
  });

  function relay(u: http2.ClientHttp2Stream): void {
    u.on("response", (h, flags) => {
      if (settled || down.closed) return;
      const httpStatus = Number(h[":status"]);
      if (httpStatus !== 200) return end(status(codeOfHttpStatus(httpStatus), `the control plane answered HTTP ${httpStatus}`));
      const answer = pick(h, RESPONSE_HEADERS, { ":status": 200 });
      // A trailers-only answer (how gRPC servers send most errors) is one HEADERS frame that ends the stream.
      if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
        settled = true;
        return trailersOnly(down, answer);
      }
      down.respond(answer, { waitForTrailers: true });
      u.pipe(down);
    });
    u.on("trailers", (t) => {
      if (settled) return;
      settled = true;
      trailers = pick(t, RESPONSE_HEADERS);
    });
    u.on("error", (err: Error & { code?: string }) => {
      if (!settled && !down.closed) opts.log("warn", "forwarding a machine's call failed", { path, error: err.code ?? err.message });
      end(status(Code.Unavailable, "metal-core lost the control plane under this call"));
    });
    // Closed without trailers (reset by the server, or the session lost): the machine's call ends Unavailable so the hammer fails over.
    u.on("close", () => end(status(Code.Unavailable, `the control plane's stream ended without a status (${u.rstCode})`)));
  }

  down.on("wantTrailers", () => {
    if (down.closed) return;
    down.sendTrailers(trailers ?? status(Code.Unavailable, "the control plane's stream ended without a status"));
  });
}

/** What a refused machine may still send on its stream before it is reset. */
const DISCARD_MAX_BYTES = 64 * 1024;

/**
 * Whatever the machine still sends after its answer is not wanted. It is read
 * and dropped (resetting at once could overtake the answer on the wire), up
 * to a bound; past that the stream is reset.
 */
export function discardRest(down: http2.ServerHttp2Stream): void {
  let dropped = 0;
  down.on("data", (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > DISCARD_MAX_BYTES && !down.closed) down.close(NGHTTP2_CANCEL);
  });
  down.resume();
}

function trailersOnly(down: http2.ServerHttp2Stream, grpcStatus: http2.OutgoingHttpHeaders): void {
  if (down.closed || down.headersSent) return;
  down.respond({ ":status": 200, "content-type": "application/grpc", ...grpcStatus }, { endStream: true });
  discardRest(down);
}

function refuseHttp(down: http2.ServerHttp2Stream, httpStatus: number, text: string): void {
  down.respond({ ":status": httpStatus, "content-type": "text/plain" });
  down.end(text);
  discardRest(down);
}
