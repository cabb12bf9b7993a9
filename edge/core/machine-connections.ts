import type http2 from "node:http2";
import type net from "node:net";

export interface ConnectionLimits {
  maxConnections: number;
  maxConnectionsPerAddress: number;
  idleTimeoutMs: number;
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
  private total = 0;
  private readonly perAddress = new Map<string, number>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** Connections cut on accept since the last time it was read (for a rate-limited log line). */
  refused = 0;

  constructor(private readonly limits: ConnectionLimits) {}

  /** True when the socket may stay; it is then counted until it closes. */
  admit(socket: net.Socket): boolean {
    const address = socket.remoteAddress ?? "";
    const fromThere = this.perAddress.get(address) ?? 0;
    if (this.total >= this.limits.maxConnections || fromThere >= this.limits.maxConnectionsPerAddress) {
      this.refused++;
      return false;
    }
    this.total++;
    this.perAddress.set(address, fromThere + 1);
    socket.once("close", () => {
      this.total--;
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left === 0) this.perAddress.delete(address);
      else this.perAddress.set(address, left);
    });
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
