import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { AsyncQueue } from "../../../client/async-queue.js";
import { createTransport } from "../../../client/transport.js";
import { ReplicaService, type ReplicaServiceConsoleInputRequestSchema, type ReplicaServiceConsoleRequestSchema, type ReplicaServiceConsoleResponse } from "../../../gen/metal/internal/v1/replica_pb.js";
import type { ReplicaCredentials } from "../../auth/replica-credential.js";
import { ConsoleOutput } from "./console-output.js";
import type { ConsoleSession } from "./relay-broker.js";

type Request = MessageInitShape<typeof ReplicaServiceConsoleRequestSchema>;

export interface RemoteConsolesOptions {
  credentials: ReplicaCredentials;
  /**
   * How replicas reach each other's listeners: "http" (h2c) unless the
   * replicas serve TLS (METAL_TLS_CERT), then "https" with `ca` trusted.
   */
  scheme?: "http" | "https";
  /** Extra trust for https:// (the replicas' certificate or its CA, PEM). */
  ca?: string | Buffer;
  /** How long to wait for the other replica to open the console (its own wait for metal-bmc included). */
  openTimeoutMs?: number;
  /** Console output kept while nobody listens yet. */
  maxBufferedBytes?: number;
  /** Input messages queued towards the other replica before the console is ended as stuck. */
  outboxCapacity?: number;
}

const enc = new TextEncoder();

/**
 * Consoles held by other replicas: ReplicaService.Console streams to the
 * replica whose metal-bmc session reaches the machine. One gRPC transport
 * (one HTTP/2 connection) per peer address, shared by its consoles.
 */
export class RemoteConsoles {
  private readonly clients = new Map<string, Client<typeof ReplicaService>>();
  private readonly sessions: Http2SessionManager[] = [];

  constructor(private readonly opts: RemoteConsolesOptions) {}

  private clientOf(address: string): Client<typeof ReplicaService> {
    let c = this.clients.get(address);
    if (!c) {
      const baseUrl = `${this.opts.scheme ?? "http"}://${address}`;
      const tls = this.opts.ca === undefined ? {} : { ca: this.opts.ca };
      const session = new Http2SessionManager(baseUrl, undefined, tls);
      this.sessions.push(session);
      const transport: Transport = createTransport({ baseUrl, token: () => this.opts.credentials.current(), ca: this.opts.ca, sessionManager: session });
      c = createClient(ReplicaService, transport);
      this.clients.set(address, c);
    }
    return c;
  }

  /** Closes the connections to the other replicas (their consoles end); part of the replica's shutdown. */
  close(): void {
    for (const s of this.sessions.splice(0)) s.abort();
    this.clients.clear();
  }

  /**
   * Opens a machine's console on the replica at `address`. Rejects with the
   * other replica's error (FailedPrecondition, NotFound, DeadlineExceeded…),
   * Unavailable when it cannot be reached, DeadlineExceeded when it does not
   * answer in time.
   */
  async open(replica: { id: string; address: string }, partition: string, machineId: string, o: { signal?: AbortSignal; outputSince?: Date } = {}): Promise<ConsoleSession> {
    const abort = new AbortController();
    const input = new AsyncQueue<Request>();
    input.push({ kind: { case: "open", value: { partition, machineId, outputSince: o.outputSince ? timestampFromDate(o.outputSince) : undefined } } });
    const responses = this.clientOf(replica.address).console(input, { signal: abort.signal })[Symbol.asyncIterator]();
    const timeoutMs = this.opts.openTimeoutMs ?? 15_000;
    const timer = setTimeout(() => abort.abort(new ConnectError(`replica "${replica.id}" did not open the console of machine "${machineId}" within ${timeoutMs} ms`, Code.DeadlineExceeded)), timeoutMs);
    const onAbort = () => abort.abort(new ConnectError("console request cancelled", Code.Canceled));
    o.signal?.addEventListener("abort", onAbort, { once: true });
    if (o.signal?.aborted) onAbort();
    let first: IteratorResult<ReplicaServiceConsoleResponse>;
    try {
      first = await responses.next();
    } catch (err) {
      input.close();
      throw abort.signal.aborted && abort.signal.reason instanceof ConnectError ? abort.signal.reason : cameFrom(replica, err);
    } finally {
      clearTimeout(timer);
      o.signal?.removeEventListener("abort", onAbort);
    }
    const k = first.done ? undefined : first.value.kind;
    if (k?.case !== "opened") {
      input.close();
      abort.abort();
      if (k?.case === "end") throw new ConnectError(k.value.message, k.value.code || Code.Unknown);
      throw new ConnectError(`replica "${replica.id}" ended the console stream without opening the console`, Code.Unavailable);
    }
    return new RemoteConsole(k.value.relayId, partition, machineId, replica.id, input, responses, abort, this.opts.maxBufferedBytes ?? 256 * 1024, this.opts.outboxCapacity ?? 1024);
  }

  /** Passes a browser console's Input to the replica that holds the console (ReplicaService.ConsoleInput); rejects with its answer. */
  async consoleInput(replica: { id: string; address: string }, req: MessageInitShape<typeof ReplicaServiceConsoleInputRequestSchema>): Promise<void> {
    try {
      await this.clientOf(replica.address).consoleInput(req, { timeoutMs: this.opts.openTimeoutMs ?? 15_000 });
    } catch (err) {
      throw cameFrom(replica, err);
    }
  }
}

/** An error of the stream to another replica, said so that the user can tell where it happened. */
function cameFrom(replica: { id: string }, err: unknown): ConnectError {
  const e = ConnectError.from(err);
  // Errors the other replica answered with are the console's own story; only a failed connection gets a word about the replica.
  if (e.code === Code.Unavailable || e.code === Code.Internal || e.code === Code.Unknown) return new ConnectError(`the connection to replica "${replica.id}" failed: ${e.rawMessage}`, e.code);
  return e;
}

/** A console that another replica holds, seen through ReplicaService.Console. */
class RemoteConsole implements ConsoleSession {
  private readonly output: ConsoleOutput;
  closed = false;
  withheldBytes = 0;

  constructor(
    readonly relayId: string,
    readonly partition: string,
    readonly machineId: string,
    private readonly replica: string,
    private readonly input: AsyncQueue<Request>,
    responses: AsyncIterator<ReplicaServiceConsoleResponse>,
    private readonly abort: AbortController,
    maxBuffered: number,
    private readonly capacity: number,
  ) {
    this.output = new ConsoleOutput(maxBuffered);
    void this.read(responses);
  }

  private async read(responses: AsyncIterator<ReplicaServiceConsoleResponse>): Promise<void> {
    try {
      for (;;) {
        const n = await responses.next();
        if (this.closed) return;
        if (n.done) return this.close(new ConnectError(`replica "${this.replica}" ended the console stream without saying why`, Code.Unavailable));
        const k = n.value.kind;
        if (k.case === "data") {
          this.withheldBytes = Number(k.value.withheldBytes);
          if (k.value.data.length > 0) this.output.show(k.value.data);
        } else if (k.case === "end") {
          return this.close(k.value.code === 0 ? undefined : new ConnectError(k.value.message, k.value.code));
        }
      }
    } catch (err) {
      // Once open, the other replica ends a console with an end message, never with an error: an error is the connection's.
      if (!this.closed) this.close(new ConnectError(`the connection to replica "${this.replica}" failed: ${ConnectError.from(err).rawMessage}`, Code.Unavailable));
    }
  }

  private push(msg: Request): void {
    if (this.closed) return;
    // The other replica not reading our keystrokes for this long is a dead stream, not a slow one.
    if (this.input.size >= this.capacity) return this.close(new ConnectError(`replica "${this.replica}" does not read the console's input; ending it`, Code.ResourceExhausted));
    this.input.push(msg);
  }

  write(data: Uint8Array | string): void {
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    if (bytes.length > 0) this.push({ kind: { case: "data", value: bytes } });
  }

  resize(columns: number, rows: number): void {
    this.push({ kind: { case: "windowSize", value: { columns, rows } } });
  }

  onData(listener: (data: Uint8Array) => void): () => void {
    return this.output.onData(listener);
  }

  onClose(listener: (reason: Error | undefined) => void): () => void {
    return this.output.onClose(listener);
  }

  close(reason?: Error): void {
    if (this.closed) return;
    this.closed = true;
    // Ending the request stream ends the console on the other replica (and its relay to metal-bmc); the abort makes sure of it.
    this.input.close();
    this.abort.abort();
    this.output.end(reason);
  }
}
