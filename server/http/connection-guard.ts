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

const kWatch = Symbol("session watch");

/** A stream's session watch, reached from the stream's close listener (one shared function, no closure per stream). */
function onStreamClose(this: http2.ServerHttp2Stream & { [kWatch]?: SessionWatch }) {
  this[kWatch]?.streamClosed();
}

/** How long a session that is told to go away may take to say goodbye before it is cut. */
const GOODBYE_MS = 5_000;

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

  constructor(
    private readonly session: http2.ServerHttp2Session,
    private readonly limits: Pick<ConnectionSettings, "headersTimeoutMs" | "idleTimeoutMs">,
  ) {
    this.arm(limits.headersTimeoutMs);
    session.on("stream", (stream: http2.ServerHttp2Stream & { [kWatch]?: SessionWatch }) => {
      this.open++;
      this.disarm();
      stream[kWatch] = this;
      stream.on("close", onStreamClose);
    });
    session.once("close", () => this.disarm());
  }

  streamClosed(): void {
    if (--this.open === 0 && !this.session.closed && !this.session.destroyed) this.arm(this.limits.idleTimeoutMs);
  }

  private arm(ms: number): void {
    this.disarm();
    this.timer = setTimeout(() => this.goAway(), ms);
    this.timer.unref();
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** GOAWAY, then the socket; a peer that does not read its GOAWAY is cut a little later. */
  private goAway(): void {
    if (this.session.destroyed) return;
    this.session.close();
    setTimeout(() => this.session.destroy(), GOODBYE_MS).unref();
  }
}
