import { exhausted } from "../../errors.js";
import type { WatchItem, WatchSpec } from "./render.js";

/**
 * One open watch, as the hub sees it once it is live: a bounded queue of the
 * messages the hub dispatched to it, drained by the watch's stream. When the
 * stream does not keep up (its client does not read), the queue would grow
 * without bound; instead the watcher is ended with ResourceExhausted, its
 * queue dropped at once, and its client resumes from its last revision.
 */
export class Watcher {
  private queue: WatchItem[] = [];
  private wake: (() => void) | undefined;
  /** Set when the queue overflowed: the error the stream ends with. */
  failure: Error | undefined;
  /** The revision this watcher has everything up to (its stream's resume point); the hub's messages at or below it are dropped. */
  skipUpTo = 0;

  constructor(
    readonly spec: WatchSpec,
    private readonly maxQueued: number,
    /** The hub's position when this watcher was attached: everything after it is dispatched here. */
    readonly attachedAt: number,
    private readonly onOverflow: (w: Watcher) => void,
  ) {}

  /** Takes the hub's messages for this watcher (one batch, whole transactions). */
  offer(items: readonly WatchItem[]): void {
    if (this.failure || items.length === 0) return;
    if (this.queue.length + items.length > this.maxQueued) {
      this.queue = [];
      this.failure = exhausted(`watch fell behind: more than ${this.maxQueued} messages waited to be read; reconnect with since_revision to resume`);
      this.onOverflow(this);
    } else {
      for (const item of items) this.queue.push(item);
    }
    this.wake?.();
  }

  /** The next message, or undefined when `signal` ended the call; throws the overflow error. */
  async next(signal: AbortSignal): Promise<WatchItem | undefined> {
    for (;;) {
      if (this.failure) throw this.failure;
      if (signal.aborted) return undefined;
      const item = this.queue.shift();
      if (item) {
        if (item.tx <= this.skipUpTo) continue;
        return item;
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener("abort", done);
          this.wake = undefined;
          resolve();
        };
        this.wake = done;
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }

  /** Messages waiting to be read (tests). */
  get queued(): number {
    return this.queue.length;
  }
}
