import http2 from "node:http2";
import type { MachineProxyLog, Upstream } from "./machine-forwarder.js";

/** A PING every this long keeps the connection known to be alive under long silent Wait streams. */
const PING_INTERVAL_MS = 15_000;
/** A PING unanswered this long means the control plane (or the way to it) is gone: the session is destroyed, its streams end Unavailable. */
const PING_TIMEOUT_MS = 10_000;

/**
 * metal-core's one HTTP/2 connection to the control plane, shared by all its
 * machines' calls. It carries no credential of its own. It is dialled on the
 * first call and again on the first call after it was lost; PINGs notice an
 * upstream that went silent (a dead peer sends no reset), so hammers fail
 * over instead of waiting on a stream that will never end.
 */
export class UpstreamSession implements Upstream {
  private current: http2.ClientHttp2Session | undefined;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly log: MachineProxyLog,
    private readonly pingIntervalMs = PING_INTERVAL_MS,
    private readonly pingTimeoutMs = PING_TIMEOUT_MS,
  ) {}

  session(): http2.ClientHttp2Session {
    if (this.closed) throw new Error("metal-core's machine endpoint is closed");
    const s = this.current;
    if (s && !s.closed && !s.destroyed) return s;
    return (this.current = this.dial());
  }

  private dial(): http2.ClientHttp2Session {
    const s = http2.connect(this.url);
    s.on("error", (err: Error & { code?: string }) => {
      this.log("warn", "the connection to the control plane failed", { upstream: this.url, error: err.code ?? err.message });
    });
    s.on("goaway", () => {
      // The next call dials anew; the streams already open finish on this session.
      if (this.current === s) this.current = undefined;
    });
    const pinger = setInterval(() => {
      if (s.destroyed || s.connecting) return;
      const timeout = setTimeout(() => s.destroy(new Error("the control plane did not answer a PING")), this.pingTimeoutMs);
      try {
        s.ping((err) => {
          clearTimeout(timeout);
          if (err && !s.destroyed) s.destroy(err);
        });
      } catch (err) {
        clearTimeout(timeout);
        s.destroy(err as Error);
      }
    }, this.pingIntervalMs);
    pinger.unref();
    s.once("close", () => {
      clearInterval(pinger);
      if (this.current === s) this.current = undefined;
    });
    return s;
  }

  /** Destroys the connection; its open streams end (their machines get Unavailable). */
  close(): void {
    this.closed = true;
    this.current?.destroy();
    this.current = undefined;
  }
}
