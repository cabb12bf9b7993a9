/**
 * An unbounded queue that a client-side request stream reads from: a
 * daemon pushes messages, the Connect call sends them in order, and closing
 * the queue ends the stream. `skip` may drop a message that adds nothing to
 * what is already waiting (a second heartbeat, say).
 */
export class StreamQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: (() => void) | undefined;
  private closed = false;

  constructor(private readonly skip?: (item: T, queued: readonly T[]) => boolean) {}

  push(item: T): void {
    if (this.closed || this.skip?.(item, this.items)) return;
    this.items.push(item);
    this.wake();
  }

  close(): void {
    this.closed = true;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.items.length > 0) {
        yield this.items.shift()!;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }
}
