/**
 * Follows a machine Watch for as long as the page wants it: reconnects with
 * backoff when the stream drops and resumes after the last revision it saw
 * whole, so nothing is missed and nothing polls (DESIGN.md §8 "Watch").
 * Listeners are told at most once per task, so a burst of changes is one
 * render, and the snapshot only once it is complete.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { MachineService as AdminMachineService } from "../gen/metal/admin/v1/machine_pb.js";
import { MachineService } from "../gen/metal/api/v1/machine_pb.js";
import { type ClientOf, describeError } from "./api.js";
import { applyWatchMessage, emptyWatchState, type WatchMessage, type WatchState } from "./watch-state.js";

/** Performance mark of the first complete snapshot on this page (read by test/web/console-load.ts). */
export const MARK_SNAPSHOT = "metal:machines-snapshot";
/** Performance mark of the first message of the first Watch on this page: the rest until MARK_SNAPSHOT is streaming and decoding. */
export const MARK_FIRST_MESSAGE = "metal:machines-first-message";

/** Opens the stream, resuming after `sinceRevision` when given. */
export type OpenWatch = (sinceRevision: bigint | undefined, signal: AbortSignal) => AsyncIterable<{ message: WatchMessage }>;

/** Codes after which a new stream can help; the others (no permission, bad request) would fail again. */
const RECONNECT = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.ResourceExhausted, Code.Unknown, Code.Internal, Code.Aborted, Code.Canceled]);

export interface MachineWatch {
  readonly state: WatchState;
  /** Set while the stream is down (the reason, and that it reconnects) or failed for good. */
  readonly problem: string | undefined;
  /** Bumped on every change the listeners were told about. */
  readonly version: number;
  subscribe(listener: () => void): () => void;
  stop(): void;
}

/**
 * The table's Watch for a key: "*" is the operator's (metal.admin.v1, every machine), anything else a project's.
 * The snapshot in batches (a few messages instead of one per machine: the table waits for all of it anyway), and
 * machines as summaries (the table's columns only: 188 instead of 340 KiB for the benchmark's 1,000 machines). web/early-watch.ts
 * sends the same request before the app runs.
 */
export function watchMachines(api: ClientOf, key: string): OpenWatch {
  return (sinceRevision, signal) =>
    key === "*"
      ? api(AdminMachineService).watch({ sinceRevision, batchSnapshot: true, summary: true }, { signal })
      : api(MachineService).watch({ project: key, sinceRevision, batchSnapshot: true, summary: true }, { signal });
}

/** One machine, whole (hardware, allocation, every event), for its page. */
export function watchMachine(api: ClientOf, key: string, id: string): OpenWatch {
  return (sinceRevision, signal) => (key === "*" ? api(AdminMachineService).watch({ id, sinceRevision }, { signal }) : api(MachineService).watch({ project: key, id, sinceRevision }, { signal }));
}

let markedFirst = false;

export function startMachineWatch(open: OpenWatch, onFatal?: (err: unknown) => void): MachineWatch {
  const state = emptyWatchState();
  const stop = new AbortController();
  const listeners = new Set<() => void>();
  let problem: string | undefined;
  let version = 0;
  let scheduled = false;
  const notify = () => {
    if (scheduled) return;
    scheduled = true;
    setTimeout(() => {
      scheduled = false;
      version++;
      for (const l of listeners) l();
    }, 0);
  };
  (async () => {
    let delay = 250;
    while (!stop.signal.aborted) {
      try {
        for await (const { message } of open(state.resumeAfter, stop.signal)) {
          if (problem !== undefined) {
            problem = undefined;
            notify();
          }
          delay = 250;
          if (!markedFirst) {
            markedFirst = true;
            performance.mark(MARK_FIRST_MESSAGE);
          }
          // Snapshot rows are told about once it is complete: redrawing the table as it streams in (tried: every
          // 150 ms) competes with decoding the stream on the one main thread and made the full table later, not sooner.
          if (applyWatchMessage(state, message)) notify();
          if (message.case === "snapshotDone" && performance.getEntriesByName(MARK_SNAPSHOT).length === 0) performance.mark(MARK_SNAPSHOT);
        }
        // The server ended the stream (shutting down): reconnect like after a drop.
      } catch (err) {
        if (stop.signal.aborted) return;
        if (!RECONNECT.has(ConnectError.from(err).code)) {
          problem = describeError(err);
          notify();
          onFatal?.(err);
          return;
        }
        problem = `${describeError(err)}; reconnecting`;
        notify();
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  })();
  return {
    state,
    get problem() {
      return problem;
    },
    get version() {
      return version;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stop: () => stop.abort(),
  };
}
