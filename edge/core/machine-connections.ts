import type http2 from "node:http2";
import type net from "node:net";

export interface ConnectionLimits {
  maxConnections: number;
  maxConnectionsPerAddress: number;
  maxStreams: number;
  maxStreamsPerAddress: number;
  idleTimeoutMs: number;
}

/** Counts per key (a remote address) and in total, under two caps. */
class Caps {
  private total = 0;
  private readonly perKey = new Map<string, number>();

  constructor(
    private readonly max: number,
    private readonly maxPerKey: number,
  ) {}

  /** Takes a slot, or false when either cap is full; `release` gives it back. */
  take(key: string): boolean {
    const n = this.perKey.get(key) ?? 0;
    if (this.total >= this.max || n >= this.maxPerKey) return false;
    this.total++;
    this.perKey.set(key, n + 1);
    return true;
  }

  release(key: string): void {
    this.total--;
    const left = (this.perKey.get(key) ?? 1) - 1;
    if (left === 0) this.perKey.delete(key);
    else this.perKey.set(key, left);
  }
}

/** How long a session told to go away (GOAWAY) may take to finish its streams before it is cut. */
const GOODBYE_MS = 1_000;

/**
 * The machines' connections to metal-core's machine endpoint: caps on
 * accept (in total and per address, so one machine cannot take every slot),
 * an idle timeout for sessions without an open stream (a Wait stream may be
 * silent from the machine's side for as long as it waits, so only sessions
 * without streams are idle), and closing them all at once.
 */
export class MachineConnections {
  private readonly connections: Caps;
  private readonly streams: Caps;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** Connections and streams refused at the caps since the last time it was read (for a rate-limited log line). */
  refused = 0;

  constructor(private readonly limits: ConnectionLimits) {
    this.connections = new Caps(limits.maxConnections, limits.maxConnectionsPerAddress);
    this.streams = new Caps(limits.maxStreams, limits.maxStreamsPerAddress);
  }

  /** True when the socket may stay; it is then counted until it closes. */
  admit(socket: net.Socket): boolean {
    const address = socket.remoteAddress ?? "";
    if (!this.connections.take(address)) {
      this.refused++;
      return false;
    }
    socket.once("close", () => this.connections.release(address));
    return true;
  }

  /**
   * True when a request may run; it is then counted until its stream closes.
   * Streams are capped across connections too: each may hold a request
   * message of up to readMaxBytes, and one machine must not take every slot.
   */
  admitStream(address: string, stream: http2.ServerHttp2Stream): boolean {
    if (!this.streams.take(address)) {
      this.refused++;
      return false;
    }
    stream.once("close", () => this.streams.release(address));
    return true;
  }

  /** Watches a new session: closed after idleTimeoutMs without an open stream (also before its first). */
  watch(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    let open = 0;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => open === 0 && goAway(session, GOODBYE_MS), this.limits.idleTimeoutMs);
      timer.unref();
    };
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      open++;
      clearTimeout(timer);
      stream.once("close", () => --open === 0 && !session.closed && arm());
    });
    // A broken session is destroyed by node:http2 itself; without a listener its error would be thrown.
    session.on("error", () => {});
    session.once("close", () => {
      clearTimeout(timer);
      this.sessions.delete(session);
    });
    arm();
  }

  /** GOAWAY to every session; those still open after the grace are cut. Resolves when all are gone. */
  async closeAll(graceMs = GOODBYE_MS): Promise<void> {
    await Promise.all([...this.sessions].map((s) => goAway(s, graceMs)));
  }
}

function goAway(session: http2.ServerHttp2Session, graceMs: number): Promise<void> {
  if (session.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const cut = setTimeout(() => session.destroy(), graceMs);
    session.once("close", () => {
      clearTimeout(cut);
      resolve();
    });
    if (!session.closed) session.close();
  });
}
