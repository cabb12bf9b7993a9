/**
 * A queue that one reader drains with `for await`: the messages of an
 * outgoing stream (a daemon's requests, the server's messages to one
 * daemon). `push` never waits; closing ends the reader's loop once what was
 * queued is read.
 *
 * `capacity` bounds it: a full queue refuses the item, and the caller decides
 * what that means (the server ends a stream whose reader is too slow; the
 * daemon reconnects and gets the current state, so nothing needs a backlog).
 * `skip` drops an item that adds nothing to what already waits (a second
 * heartbeat, say); a skipped item counts as accepted.
 */
export interface AsyncQueueOptions<T> {
  /** Items waiting at most; unbounded when absent. */
  readonly capacity?: number;
  readonly skip?: (item: T, queued: readonly T[]) => boolean;
}

export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;

  constructor(private readonly opts: AsyncQueueOptions<T> = {}) {}

  /** False when the item was not taken: the queue is closed or full. */
  push(item: T): boolean {
    if (this.ended) return false;
    if (this.opts.skip?.(item, this.items)) return true;
    if (this.opts.capacity !== undefined && this.items.length >= this.opts.capacity) return false;
    this.items.push(item);
    this.wake();
    return true;
  }

  /** No more items; the reader still gets those already queued. */
  close(): void {
    this.ended = true;
    this.wake();
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Items waiting to be read. */
  get size(): number {
    return this.items.length;
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
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }
}
