/**
 * The side of a console session its user sees, the same for a console held
 * here (the relay to metal-bmc) and one held by another replica: output
 * handed to the listeners, kept as scrollback while nobody listens yet (the
 * newest bytes, up to a bound), and the end told once to whoever waits for it.
 */
export class ConsoleOutput {
  private readonly dataListeners = new Set<(d: Uint8Array) => void>();
  private readonly closeListeners = new Set<(r: Error | undefined) => void>();
  private buffered: Uint8Array[] = [];
  private bufferedBytes = 0;
  private ended = false;
  private reason: Error | undefined;

  constructor(private readonly maxBuffered: number) {}

  /** What arrived before the first listener is handed to it at once. */
  onData(listener: (data: Uint8Array) => void): () => void {
    this.dataListeners.add(listener);
    if (this.buffered.length > 0) {
      const held = this.buffered;
      this.buffered = [];
      this.bufferedBytes = 0;
      for (const d of held) listener(d);
    }
    return () => this.dataListeners.delete(listener);
  }

  /** Called once with the end's reason (undefined: a clean end); at once when it has ended. */
  onClose(listener: (reason: Error | undefined) => void): () => void {
    if (this.ended) {
      listener(this.reason);
      return () => {};
    }
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  show(data: Uint8Array): void {
    if (this.dataListeners.size > 0) {
      for (const l of this.dataListeners) l(data);
      return;
    }
    // Nobody reads yet: keep the newest output, as a terminal's scrollback would.
    this.buffered.push(data);
    this.bufferedBytes += data.length;
    while (this.bufferedBytes > this.maxBuffered && this.buffered.length > 1) this.bufferedBytes -= this.buffered.shift()!.length;
  }

  /** Tells the close listeners, once, and lets go of every listener. */
  end(reason: Error | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.reason = reason;
    for (const l of this.closeListeners) l(reason);
    this.closeListeners.clear();
    this.dataListeners.clear();
  }
}
