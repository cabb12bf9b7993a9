import http2 from "node:http2";
import net from "node:net";
import { formatHostPort, parseHostPort } from "../../client/host-port.js";
import { MachineConnections } from "./machine-connections.js";
import { discardRest, forwardMachineStream, type MachineProxyLog, type OpenCall } from "./machine-forwarder.js";
import { UpstreamSession } from "./upstream-session.js";

/** What the machine network (which nobody vouches for) may open and send. */
export interface MachineProxyLimits {
  /** Open connections from all machines; more are cut on accept. */
  maxConnections: number;
  /** Open connections from one address, so one machine cannot take every slot. */
  maxConnectionsPerAddress: number;
  /** Concurrent streams per connection (HTTP/2 SETTINGS); a hammer needs a Wait and a call or two. */
  maxStreamsPerConnection: number;
  /** Concurrent streams of all machines, and of one address; more are answered with HTTP 503 (Unavailable). */
  maxStreams: number;
  maxStreamsPerAddress: number;
  /** Largest request body of a call, as it comes on the wire (a Register with 128 NICs is a few dozen KiB). */
  readMaxBytes: number;
  /** Largest header list of a request (HTTP/2 SETTINGS; a machine credential is well under 2 KiB). */
  maxHeaderListBytes: number;
  /** A connection without an open stream is closed after this long. */
  idleTimeoutMs: number;
}

export const DEFAULT_MACHINE_PROXY_LIMITS: MachineProxyLimits = {
  maxConnections: 1024,
  maxConnectionsPerAddress: 16,
  maxStreamsPerConnection: 16,
  maxStreams: 512,
  maxStreamsPerAddress: 32,
  readMaxBytes: 1024 * 1024,
  maxHeaderListBytes: 16 * 1024,
  idleTimeoutMs: 60_000,
};

export interface MachineProxyOptions {
  /** The control plane's base URL (http:// h2c or https://); the proxy dials it with NO token of its own. */
  upstreamUrl: string;
  /** host:port to listen on; port 0 takes any free port. */
  listen: string;
  log?: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
  /** Optional bounds (defaults sane): connections, streams per connection, request bytes. */
  limits?: Partial<MachineProxyLimits>;
}

export interface MachineProxy {
  /** host:port it actually listens on. */
  readonly endpoint: string;
  /** Stops listening and closes every machine connection at once (their streams end, so hammers fail over). */
  close(): Promise<void>;
}

/** TCP keepalive finds machines that vanished under a Wait stream. */
const TCP_KEEPALIVE_DELAY_MS = 60_000;
/** Connections and streams refused at the caps are logged at most this often. */
const REFUSED_LOG_MS = 60_000;

/**
 * metal-core's machine endpoint: metal-hammer on the machines cabled to this
 * switch calls it (gRPC over h2c), and each call goes to the control plane as
 * a raw HTTP/2 stream on ONE connection that metal-core holds for all its
 * machines (see machine-forwarder.ts for what is checked and passed on). No
 * message is decoded here and no credential added: each call carries the
 * machine's own, which the control plane checks.
 */
export async function startMachineProxy(opts: MachineProxyOptions): Promise<MachineProxy> {
  const limits = { ...DEFAULT_MACHINE_PROXY_LIMITS, ...opts.limits };
  const log: MachineProxyLog = opts.log ?? (() => {});
  const { host, port } = parseHostPort(opts.listen);

  // A lost control plane fails every open call at once (thousands of Waits): one line per kind of trouble per interval.
  const troubleLog = throttled(log, REFUSED_LOG_MS);
  const upstream = new UpstreamSession(opts.upstreamUrl, troubleLog);
  const open = new Set<OpenCall>();
  const connections = new MachineConnections(limits);
  let lastRefusedLog = 0;
  const refusedLog = () => {
    if (Date.now() - lastRefusedLog < REFUSED_LOG_MS) return;
    lastRefusedLog = Date.now();
    log("warn", "machine connections or streams refused at the caps", { refused: connections.refused, limits });
    connections.refused = 0;
  };
  const h2 = http2.createServer({
    settings: { maxConcurrentStreams: limits.maxStreamsPerConnection, maxHeaderListSize: limits.maxHeaderListBytes },
    maxHeaderListPairs: 64,
  });
  h2.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    if (!connections.admitStream(stream.session?.socket?.remoteAddress ?? "", stream)) {
      // Before any of the request is read. HTTP 503 is Unavailable to gRPC clients
      // (a refused HTTP/2 stream would be too, but Node's clients report it as Internal).
      stream.on("error", () => {});
      stream.respond({ ":status": 503, "content-type": "text/plain" });
      stream.end("metal-core: too many calls from this machine or from all machines; try again or the other leaf\n");
      discardRest(stream);
      return refusedLog();
    }
    forwardMachineStream(stream, headers, { upstream, readMaxBytes: limits.readMaxBytes, log: troubleLog, open });
  });
  h2.on("session", (session: http2.ServerHttp2Session) => connections.watch(session));

  const front = net.createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: TCP_KEEPALIVE_DELAY_MS }, (socket) => {
    if (!connections.admit(socket)) {
      socket.destroy();
      return refusedLog();
    }
    h2.emit("connection", socket);
  });
  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    front.listen({ host: host || undefined, port, exclusive: true }, () => {
      front.off("error", reject);
      resolve();
    });
  });
  const bound = front.address() as net.AddressInfo;
  const endpoint = formatHostPort({ host: bound.address, port: bound.port });
  log("info", "machine endpoint listening", { endpoint, upstream: opts.upstreamUrl });

  let closing: Promise<void> | undefined;
  return {
    endpoint,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => front.close(() => resolve()));
        // Every open call ends now with Unavailable, so hammers turn to their other leaf; its upstream stream is cancelled.
        for (const call of [...open]) call.abandon("metal-core's machine endpoint is shutting down");
        await connections.closeAll();
        await stopped;
        upstream.close();
      })();
      return closing;
    },
  };
}

/** `log`, passing each message at most once per `intervalMs`; the next line that passes says how many were left out. */
function throttled(log: MachineProxyLog, intervalMs: number): MachineProxyLog {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (level, msg, fields) => {
    const seen = last.get(msg);
    const now = Date.now();
    if (seen && now - seen.at < intervalMs) {
      seen.suppressed++;
      return;
    }
    last.set(msg, { at: now, suppressed: 0 });
    log(level, msg, seen?.suppressed ? { ...fields, suppressed: seen.suppressed } : fields);
  };
}
