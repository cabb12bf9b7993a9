import { Code, ConnectError } from "@connectrpc/connect";
import { DEFAULT_BACKOFF, retryLoop } from "../../client/backoff.js";
import type * as api from "../../gen/metal/api/v1/machine_pb.js";
import { io } from "../io.js";

/** One message of a machine watch (tenant and admin responses share the oneof). */
export type WatchMessage = api.MachineServiceWatchResponse["message"];

/** Opens the watch, resuming after `sinceRevision` when given. */
export type OpenWatch = (sinceRevision: bigint | undefined, signal: AbortSignal) => AsyncIterable<{ message: WatchMessage }>;

/**
 * Codes after which reconnecting can help: the server or the network went
 * away (a replica restarted, a load balancer dropped the connection), or the
 * server ended a watch that fell behind. Everything else (no permission, a
 * bad request) would only fail again.
 */
const RECONNECT = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.ResourceExhausted, Code.Unknown, Code.Internal, Code.Aborted, Code.Canceled]);

/**
 * Follows a watch until `handle` says it has seen enough (returns true):
 * on a dropped stream it reconnects with backoff (client/backoff.ts) and
 * resumes after the last revision it saw whole (a snapshot_done, or a
 * message marked last_in_revision), so nothing is missed; a server that no
 * longer has that revision answers with reset and a new snapshot, which
 * `handle` gets like any other message. Messages of a revision that was cut
 * off mid-way may come again after a reconnect; handlers keep state by id,
 * so a repeat changes nothing.
 */
export async function followWatch(open: OpenWatch, handle: (m: WatchMessage) => boolean | undefined): Promise<void> {
  let since: bigint | undefined;
  const stop = new AbortController();
  await retryLoop(
    async (ctx) => {
      // Each attempt's call ends with it, also when the handler has seen enough: the server frees its stream at once.
      const call = new AbortController();
      try {
        for await (const { message } of open(since, call.signal)) {
          ctx.healthy();
          if (message.case === "snapshotDone") since = message.value.revision;
          else if ((message.case === "change" || message.case === "eventsAdded") && message.value.lastInRevision) since = message.value.revision;
          if (handle(message)) return { done: undefined };
        }
      } finally {
        call.abort();
      }
      // The server ended the stream without an error (it is shutting down): reconnect like after a drop.
      return undefined;
    },
    {
      policy: DEFAULT_BACKOFF,
      signal: stop.signal,
      retryable: (err) => RECONNECT.has(ConnectError.from(err).code),
      onRetry: ({ err, delayMs }) => {
        if (err) io().stderr(`watch: ${ConnectError.from(err).rawMessage}; reconnecting in ${(delayMs / 1000).toFixed(1)}s\n`);
      },
    },
  );
}
