import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { AsyncQueue } from "../../../client/async-queue.js";
import type { ReplicaService, ReplicaServiceConsoleRequest, ReplicaServiceConsoleResponseSchema } from "../../../gen/metal/internal/v1/replica_pb.js";
import type { ConsoleSession, RelayBroker } from "../../sessions/console/relay-broker.js";
import type { BrowserConsoles } from "../../usecases/console/browser-consoles.js";
import { validator } from "../../validate/validator.js";

export interface ReplicaServiceDeps {
  /** This replica's consoles: only metal-bmc sessions held here are asked. */
  consoles: RelayBroker;
  /** Browser consoles held here, for the Input another replica received (ConsoleInput). */
  browserConsoles?: Pick<BrowserConsoles, "inputFromReplica">;
}

type Response = MessageInitShape<typeof ReplicaServiceConsoleResponseSchema>;

/** Input per message, as metal-bmc's relay takes it. */
const MAX_CHUNK = 64 * 1024;
/** Output messages queued for the other replica; one that does not read for this long is ended. */
const OUT_CAPACITY = 1024;
/** A terminal larger than this is not a terminal. */
const MAX_DIMENSION = 10_000;

const reasonText = (err: Error) => (err as { rawMessage?: string }).rawMessage ?? err.message;

/**
 * The replica-to-replica half of a console: another replica's SSH front end
 * decided its user may see a machine's console, and this replica holds the
 * partition's metal-bmc session, so the console is opened here (RelayBroker)
 * and its bytes pass through this stream. Only replicas get here: the
 * method's permission is `replica`, checked by the auth interceptor.
 */
export function createReplicaService(deps: ReplicaServiceDeps): ServiceImpl<typeof ReplicaService> {
  const impl: ServiceImpl<typeof ReplicaService> = {
    async *console(requests: AsyncIterable<ReplicaServiceConsoleRequest>, ctx: HandlerContext): AsyncGenerator<Response> {
      const it = requests[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done) return;
      const open = first.value.kind.case === "open" ? first.value.kind.value : undefined;
      if (!open) validator().add("open", "the first message must be an open").check();
      validator().id("open.partition", open!.partition).uuid("open.machine_id", open!.machineId).check();
      // The other replica read an older row: its caller may try another replica that holds one.
      if (deps.consoles.agentsOf(open!.partition).length === 0) {
        throw new ConnectError(`no metal-bmc of partition "${open!.partition}" is connected to this replica any more`, Code.Unavailable);
      }
      const outputSince = open!.outputSince ? timestampDate(open!.outputSince) : undefined;
      const session = await deps.consoles.openConsole(open!.partition, open!.machineId, { signal: ctx.signal, outputSince });
      yield* relay(session, it, ctx.signal);
    },
    consoleInput(req) {
      if (!deps.browserConsoles) throw new ConnectError("this replica holds no browser consoles", Code.NotFound);
      deps.browserConsoles.inputFromReplica(req.tokenId, { sessionId: req.sessionId, project: req.project, data: req.data, resize: req.resize });
      return {};
    },
  };
  return impl;
}

/** Passes one open console through the stream until either side ends it; the last message says why it ended. */
async function* relay(session: ConsoleSession, input: AsyncIterator<ReplicaServiceConsoleRequest>, call: AbortSignal): AsyncGenerator<Response> {
  // Bounded by hand (not by the queue), so that the end always fits behind a full queue.
  const out = new AsyncQueue<Response>();
  let stuck = false;
  const send = (msg: Response) => {
    if (out.closed) return;
    if (out.size < OUT_CAPACITY) {
      out.push(msg);
      return;
    }
    stuck = true;
    session.close(new ConnectError("the replica showing the console does not read it; ending it", Code.ResourceExhausted));
  };
  send({ kind: { case: "opened", value: { relayId: session.relayId } } });
  session.onData((data) => send({ kind: { case: "data", value: { data, producedAt: timestampNow(), withheldBytes: BigInt(session.withheldBytes) } } }));
  session.onClose((reason) => {
    if (!stuck) {
      const code = reason instanceof ConnectError ? reason.code : reason ? Code.Unknown : 0;
      out.push({ kind: { case: "end", value: { code, message: reason ? reasonText(reason) : "" } } });
    }
    out.close();
  });
  const onAbort = () => session.close(new ConnectError("the replica showing the console went away", Code.Canceled));
  call.addEventListener("abort", onAbort, { once: true });
  if (call.aborted) onAbort();
  void readInput(session, input).catch((err: unknown) => session.close(err instanceof Error ? err : new Error(String(err))));
  try {
    yield* out;
    if (stuck) throw new ConnectError("the console's output was not read; ended", Code.ResourceExhausted);
  } finally {
    call.removeEventListener("abort", onAbort);
    session.close();
  }
}

/** The other replica's input, until its stream ends (its user left: the console ends cleanly). */
async function readInput(session: ConsoleSession, input: AsyncIterator<ReplicaServiceConsoleRequest>): Promise<void> {
  for (;;) {
    const n = await input.next();
    if (n.done || session.closed) return session.close();
    const k = n.value.kind;
    if (k.case === "data") {
      if (k.value.length > MAX_CHUNK) throw new ConnectError(`data: at most ${MAX_CHUNK} bytes per message`, Code.InvalidArgument);
      session.write(k.value);
    } else if (k.case === "windowSize") {
      const { columns, rows } = k.value;
      if (columns > 0 && rows > 0 && columns <= MAX_DIMENSION && rows <= MAX_DIMENSION) session.resize(columns, rows);
    } else if (k.case === "open") {
      throw new ConnectError("open: only the first message may be an open", Code.InvalidArgument);
    }
  }
}
