/** One Input call's worth: keystrokes (at most the server's bound) and, when it changed, the terminal's size. */
export interface ConsoleInput {
  data: Uint8Array;
  resize?: { columns: number; rows: number };
}

/** The server's bound on one Input call (ConsoleServiceInputRequest.data). */
export const MAX_INPUT_BYTES = 4096;

/**
 * Keystrokes and resizes on their way to ConsoleService.Input, one call at a
 * time: the first key leaves at once, and whatever is typed (or pasted) while
 * a call is on its way goes together in the next one, so a fast typist or a
 * paste costs a few calls, not one per key, and the order is kept. Sizes are
 * merged (only the newest counts). A failed call stops the batcher: the
 * console is gone (or was never ours), and onError says why.
 */
export class InputBatcher {
  private chunks: Uint8Array[] = [];
  private bytes = 0;
  private size: { columns: number; rows: number } | undefined;
  private inFlight = false;
  private started = false;
  private stopped = false;

  constructor(
    private readonly send: (input: ConsoleInput) => Promise<unknown>,
    private readonly onError: (err: unknown) => void,
    private readonly maxBytes = MAX_INPUT_BYTES,
  ) {}

  /** Input typed before the console opened waits until start(). */
  start(): void {
    this.started = true;
    this.flush();
  }

  type(data: Uint8Array): void {
    if (this.stopped || data.length === 0) return;
    this.chunks.push(data);
    this.bytes += data.length;
    this.flush();
  }

  resize(columns: number, rows: number): void {
    if (this.stopped) return;
    this.size = { columns, rows };
    this.flush();
  }

  /** Nothing more is sent; what waits is dropped. */
  stop(): void {
    this.stopped = true;
    this.chunks = [];
    this.bytes = 0;
    this.size = undefined;
  }

  /** Calls on their way or waiting (tests). */
  get idle(): boolean {
    return !this.inFlight && this.bytes === 0 && this.size === undefined;
  }

  private flush(): void {
    if (!this.started || this.stopped || this.inFlight) return;
    if (this.bytes === 0 && !this.size) return;
    const input: ConsoleInput = { data: this.take() };
    if (this.size) input.resize = this.size;
    this.size = undefined;
    this.inFlight = true;
    this.send(input).then(
      () => {
        this.inFlight = false;
        this.flush();
      },
      (err: unknown) => {
        this.inFlight = false;
        if (this.stopped) return;
        this.stop();
        this.onError(err);
      },
    );
  }

  /** Up to maxBytes of what waits, in order; a chunk larger than what is left is split. */
  private take(): Uint8Array {
    const n = Math.min(this.bytes, this.maxBytes);
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0]!;
      const part = c.length <= n - at ? c : c.subarray(0, n - at);
      out.set(part, at);
      at += part.length;
      if (part === c) this.chunks.shift();
      else this.chunks[0] = c.subarray(part.length);
    }
    this.bytes -= n;
    return out;
  }
}
