import type http2 from "node:http2";
import type net from "node:net";
import type { ConnectionSettings } from "../config.js";

/**
 * Counts open connections, in total and per remote address, and refuses the
 * ones over either cap on accept: nothing of them is read, nothing is kept.
 */
export class ConnectionCaps {
  private total = 0;
  private readonly perAddress = new Map<string, number>();

  constructor(private readonly limits: Pick<ConnectionSettings, "maxConnections" | "maxConnectionsPerAddress">) {}

  /** True when the socket may stay; it is then counted until it closes. */
  admit(socket: net.Socket): boolean {
    const address = socket.remoteAddress ?? "";
    const fromThere = this.perAddress.get(address) ?? 0;
    if (this.total >= this.limits.maxConnections || fromThere >= this.limits.maxConnectionsPerAddress) return false;
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
}

/**
 * Runs `fn` once the event loop has read every socket that has something
 * ready. A timeout that fires on a busy server may otherwise cut a peer whose
 * bytes are already here, unread (seen under a flood of streams).
 */
export function afterPendingInput(fn: () => void): void {
  setImmediate(() => setImmediate(fn));
}

const kWatch = Symbol("session watch");

type WatchedStream = http2.ServerHttp2Stream & { [kWatch]?: SessionWatch };

/** A stream's session watch, reached from the stream's close listener (one shared function, no closure per stream). */
function onStreamClose(this: WatchedStream) {
  this[kWatch]?.streamClosed();
}

/** How long a session that is told to go away may take to say goodbye before it is cut. */
const GOODBYE_MS = 5_000;

const watches = new WeakMap<http2.Http2Session, SessionWatch>();

/**
 * Closes an HTTP/2 session that holds no open stream for too long: until its
 * first stream, `headersTimeoutMs`; after its last one ended, `idleTimeoutMs`.
 * A session with an open stream is never closed for idleness: a Wait, a
 * switch or BMC session, a console relay may be silent for long and must stay
 * (dead peers under them are found by TCP keepalive, see listener.ts).
 */
export class SessionWatch {
  private open = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Changes with every arming: a deferred expiry of an older arming does nothing. */
  private generation = 0;

  /** The watch of a session, made on its first sight (the session event or its first stream, whichever comes first). */
  static of(session: http2.ServerHttp2Session, limits: Pick<ConnectionSettings, "headersTimeoutMs" | "idleTimeoutMs">): SessionWatch {
    let w = watches.get(session);
    if (!w) watches.set(session, (w = new SessionWatch(session, limits)));
    return w;
  }

  private constructor(
    private readonly session: http2.ServerHttp2Session,
    private readonly limits: Pick<ConnectionSettings, "headersTimeoutMs" | "idleTimeoutMs">,
  ) {
    this.arm(limits.headersTimeoutMs);
    session.once("close", () => this.disarm());
  }

  /** Called for every stream of the session (the server's stream event, which no stream escapes). */
  streamOpened(stream: WatchedStream): void {
    this.open++;
    this.disarm();
    stream[kWatch] = this;
    stream.on("close", onStreamClose);
  }

  streamClosed(): void {
    if (--this.open === 0 && !this.session.closed && !this.session.destroyed) this.arm(this.limits.idleTimeoutMs);
  }

  private arm(ms: number): void {
    this.disarm();
    const generation = this.generation;
    this.timer = setTimeout(() => afterPendingInput(() => this.expire(generation)), ms);
    this.timer.unref();
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.generation++;
  }

  /** GOAWAY, then the socket; a peer that does not read its GOAWAY is cut a little later. */
  private expire(generation: number): void {
    if (generation !== this.generation || this.open > 0 || this.session.closed || this.session.destroyed) return;
    this.session.close();
    setTimeout(() => this.session.destroy(), GOODBYE_MS).unref();
  }
}
