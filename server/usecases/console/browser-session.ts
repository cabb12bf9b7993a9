import type { ConsoleSession } from "../../sessions/console/relay-broker.js";

/** What an Attach stream carries, before conversion to the wire. */
export type BrowserConsoleEvent = { kind: "opened"; sessionId: string; machineId: string } | { kind: "data"; data: Uint8Array } | { kind: "ended"; reason: string };

/** Output bytes per message: a burst (a boot log) goes out in few messages, none too large for a browser to take at once. */
const MAX_MESSAGE_BYTES = 64 * 1024;

export interface BrowserSessionOptions {
  /** Output waiting for a browser that does not read; beyond it the console ends (1 MiB). */
  maxPendingBytes: number;
}

/**
 * One console open in a browser: the relay to the machine, the output that
 * waits for the Attach stream to take it, and the end, told once. Who it
 * belongs to is fixed when it is made; the registry (BrowserConsoles)
 * checks it on every Input.
 */
export class BrowserSession {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private waiter: (() => void) | undefined;
  /** Undefined while open; "" for an end nobody needs to read about (the browser left). */
  private endReason: string | undefined;
  private readonly endListeners: (() => void)[] = [];
  private readonly activityListeners: (() => void)[] = [];

  constructor(
    readonly id: string,
    readonly machineId: string,
    readonly project: string,
    /** The token that attached: Input with any other token finds no session. */
    readonly tokenId: string,
    readonly subject: string,
    private readonly relay: ConsoleSession,
    private readonly opts: BrowserSessionOptions,
  ) {
    relay.onData((d) => this.show(d));
  }

  get ended(): boolean {
    return this.endReason !== undefined;
  }

  /** Keystrokes and sizes for the machine; nothing once ended. */
  write(data: Uint8Array): void {
    if (this.ended) return;
    if (data.length > 0) this.relay.write(data);
    this.active();
  }

  resize(columns: number, rows: number): void {
    if (!this.ended) this.relay.resize(columns, rows);
  }

  /** Called on every input and output (the idle timeout's clock). */
  onActivity(listener: () => void): void {
    this.activityListeners.push(listener);
  }

  /** Ends the console once; a non-empty reason is the last message the browser reads. */
  end(reason: string): void {
    if (this.ended) return;
    this.endReason = reason;
    this.relay.close();
    this.activityListeners.length = 0;
    for (const l of this.endListeners.splice(0)) l();
    this.wake();
  }

  onEnd(listener: () => void): void {
    if (this.ended) listener();
    else this.endListeners.push(listener);
  }

  /** The Attach stream's messages: opened, output as it comes, the end's reason. Ends the session when the stream stops being read. */
  async *events(): AsyncGenerator<BrowserConsoleEvent> {
    try {
      yield { kind: "opened", sessionId: this.id, machineId: this.machineId };
      for (;;) {
        if (this.pending.length > 0) {
          yield { kind: "data", data: this.take() };
          continue;
        }
        if (this.endReason !== undefined) {
          if (this.endReason !== "") yield { kind: "ended", reason: this.endReason };
          return;
        }
        await new Promise<void>((resolve) => (this.waiter = resolve));
      }
    } finally {
      this.end("");
    }
  }

  private show(data: Uint8Array): void {
    if (this.ended) return;
    // Output is small and steady; a backlog this large is a browser that stopped reading, not a slow one.
    if (this.pendingBytes + data.length > this.opts.maxPendingBytes) {
      this.end("the browser did not read the console's output; closing the console");
      return;
    }
    this.pending.push(data);
    this.pendingBytes += data.length;
    this.active();
    this.wake();
  }

  private active(): void {
    for (const l of this.activityListeners) l();
  }

  /** Joins waiting output into one message of at most MAX_MESSAGE_BYTES (a single larger chunk goes alone). */
  private take(): Uint8Array {
    let n = 0;
    let count = 0;
    while (count < this.pending.length && (count === 0 || n + this.pending[count]!.length <= MAX_MESSAGE_BYTES)) n += this.pending[count++]!.length;
    const chunks = this.pending.splice(0, count);
    this.pendingBytes -= n;
    if (chunks.length === 1) return chunks[0]!;
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}
