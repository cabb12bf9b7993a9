import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConsoleServiceRelayResponseSchema } from "../../../gen/metal/infra/v1/console_pb.js";
import { validator } from "../../validate/validator.js";
import { REPLICA_ID } from "../connections.js";
import { DaemonSession } from "../daemon-session.js";
import { ConsoleOutput } from "./console-output.js";

/**
 * A machine's serial console as server code sees it (the SSH front end, tests):
 * bytes in, bytes out, a window size, and an end that either side can bring about.
 */
export interface ConsoleSession {
  readonly relayId: string;
  readonly partition: string;
  readonly machineId: string;
  /** Input for the machine; ignored once the session has ended. */
  write(data: Uint8Array | string): void;
  /** The user's terminal size; forwarded to the console (a serial line may ignore it). */
  resize(columns: number, rows: number): void;
  /**
   * Console output. What arrived before the first listener is handed to it at
   * once, so the caller misses nothing between openConsole and onData.
   */
  onData(listener: (data: Uint8Array) => void): () => void;
  /** Called once when the session ends (undefined: a clean end); at once when it already has. */
  onClose(listener: (reason: Error | undefined) => void): () => void;
  /** Ends the session and the relay stream to metal-bmc; idempotent. */
  close(reason?: Error): void;
  readonly closed: boolean;
  /** Bytes of output withheld because they were produced before `outputSince` (or at a time metal-bmc did not say). */
  readonly withheldBytes: number;
}

/**
 * Shown once in a session that withholds output metal-bmc sent without its
 * production time: such a metal-bmc predates the field, and without the time
 * a replayed previous session cannot be told from live output.
 */
export const UNDATED_OUTPUT_NOTICE =
  "\r\n[metal-console: output is withheld: this partition's metal-bmc does not say when the machine printed it, " +
  "so output from before the machine's current allocation cannot be told apart; metal-bmc needs an update]\r\n";

/** Asks one metal-bmc session to open a Relay stream for a machine; rejects when it cannot even ask (unknown machine, no BMC). */
export type AskAgent = (relayId: string, machineId: string) => Promise<void>;

export type RelayResponse = MessageInitShape<typeof ConsoleServiceRelayResponseSchema>;

/** The metal-bmc end of a relay, as the ConsoleService.Relay handler drives it. */
export interface RelayEnd {
  /** The Relay stream's session: the handler reads metal-bmc's messages through it and closes it when the call ends. */
  readonly session: DaemonSession<RelayResponse>;
  /** What goes down to metal-bmc: input and window sizes; ends when the session ends. */
  readonly outgoing: AsyncIterable<RelayResponse>;
  /**
   * Console output from metal-bmc, with the time the machine printed it on
   * this server's clock; undefined when metal-bmc did not say.
   */
  deliver(data: Uint8Array, producedAt: Date | undefined): void;
  /** The Relay stream ended (undefined: metal-bmc closed it cleanly). */
  end(reason?: Error): void;
}

export interface RelayBrokerOptions {
  /** How long openConsole waits for metal-bmc's Relay stream. */
  openTimeoutMs?: number;
  /** Console output kept while nobody listens yet. */
  maxBufferedBytes?: number;
  /** Messages queued towards metal-bmc before the session is ended as stuck. */
  outboxCapacity?: number;
  replica?: string;
}

interface Agent {
  partition: string;
  name: string;
  ask: AskAgent;
  /** Relays asked for or open through this agent's session, ended with it. */
  relays: Set<Relay>;
}

interface Pending {
  partition: string;
  machineId: string;
  outputSince: Date | undefined;
  agent: Agent;
  settle(err: Error | undefined, relay?: Relay): void;
}

const enc = new TextEncoder();

class Relay implements ConsoleSession, RelayEnd {
  readonly session: DaemonSession<RelayResponse>;
  private readonly output: ConsoleOutput;
  private toldUndated = false;
  closed = false;
  withheldBytes = 0;

  constructor(
    readonly relayId: string,
    readonly partition: string,
    readonly machineId: string,
    private readonly outputSince: Date | undefined,
    maxBuffered: number,
    capacity: number,
    call: AbortSignal,
    private readonly onEnded: () => void,
  ) {
    this.output = new ConsoleOutput(maxBuffered);
    // metal-bmc not reading for this long is a dead relay, not a slow one: keystrokes are tiny.
    this.session = new DaemonSession(call, { capacity, stuck: () => new ConnectError("metal-bmc does not read the console relay; ending it", Code.ResourceExhausted) });
    // However the stream ends (metal-bmc closed it, sent a bad message, went away, or does not read), the console learns why.
    this.session.onEnd(() => this.close(this.session.endReason ?? (call.aborted ? new ConnectError("console relay cancelled", Code.Canceled) : undefined)));
  }

  get outgoing(): AsyncIterable<RelayResponse> {
    return this.session.outgoing();
  }

  private push(msg: RelayResponse): void {
    if (!this.closed) this.session.send(msg);
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

  deliver(data: Uint8Array, producedAt: Date | undefined): void {
    if (this.closed || data.length === 0) return;
    if (this.outputSince) {
      // Scrollback metal-bmc replays may reach back into an earlier tenant's session; undated output might, too.
      // Written as "not at or after", so that a time that is no time (NaN) is withheld as well.
      if (!(producedAt && producedAt.getTime() >= this.outputSince.getTime())) {
        this.withheldBytes += data.length;
        if (!producedAt && !this.toldUndated) {
          this.toldUndated = true;
          this.output.show(enc.encode(UNDATED_OUTPUT_NOTICE));
        }
        return;
      }
    }
    this.output.show(data);
  }

  end(reason?: Error): void {
    this.close(reason);
  }

  close(reason?: Error): void {
    if (this.closed) return;
    this.closed = true;
    // Ended from the server's side (the user left, the allocation changed), the stream ends cleanly towards metal-bmc.
    this.session.end();
    this.onEnded();
    this.output.end(reason);
  }
}

/**
 * Connects server code that wants a machine's serial console with the
 * partition's metal-bmc. openConsole asks a metal-bmc session on this replica
 * to open a ConsoleService.Relay stream with a fresh relay id; the Relay
 * handler claims that id and the two ends are joined. Only this replica's
 * sessions are asked: reaching a metal-bmc attached to another replica would
 * need a wake-up on the bus and the relay to come back here, which is not
 * built, so openConsole fails clearly instead.
 */
export class RelayBroker {
  private readonly agents = new Map<string, Agent[]>();
  private readonly pending = new Map<string, Pending>();
  private readonly openTimeoutMs: number;
  private readonly maxBuffered: number;
  private readonly capacity: number;
  private readonly replica: string;

  constructor(opts: RelayBrokerOptions = {}) {
    this.openTimeoutMs = opts.openTimeoutMs ?? 10_000;
    this.maxBuffered = opts.maxBufferedBytes ?? 256 * 1024;
    this.capacity = opts.outboxCapacity ?? 1024;
    this.replica = opts.replica ?? REPLICA_ID;
  }

  /**
   * A metal-bmc session offers to open relays. The returned function is called
   * when the session ends: every console asked through it ends as well.
   */
  attachAgent(partition: string, name: string, ask: AskAgent): () => void {
    const agent: Agent = { partition, name, ask, relays: new Set() };
    this.agents.set(partition, [...(this.agents.get(partition) ?? []), agent]);
    let detached = false;
    return () => {
      if (detached) return;
      detached = true;
      const rest = (this.agents.get(partition) ?? []).filter((a) => a !== agent);
      if (rest.length > 0) this.agents.set(partition, rest);
      else this.agents.delete(partition);
      const why = new ConnectError(`the session of metal-bmc "${name}" (partition "${partition}") ended`, Code.Unavailable);
      for (const p of [...this.pending.values()]) if (p.agent === agent) p.settle(why);
      for (const r of [...agent.relays]) r.close(why);
    };
  }

  /** The names of the metal-bmc sessions of a partition on this replica that can open relays. */
  agentsOf(partition: string): string[] {
    return (this.agents.get(partition) ?? []).map((a) => a.name);
  }

  /**
   * Opens a machine's serial console through the partition's metal-bmc.
   * Rejects with InvalidArgument (bad id), FailedPrecondition (no metal-bmc
   * of the partition on this replica; the agent could not open the console),
   * NotFound (unknown machine), DeadlineExceeded (no relay came in time), or
   * Unavailable (the agent's session ended meanwhile). With `outputSince`
   * (the start of the machine's current allocation) the session withholds
   * every byte produced before it, and every byte whose production time
   * metal-bmc did not send.
   */
  async openConsole(partition: string, machineId: string, opts: { signal?: AbortSignal; timeoutMs?: number; outputSince?: Date } = {}): Promise<ConsoleSession> {
    validator().id("partition", partition).uuid("machine_id", machineId).check();
    const id = machineId.toLowerCase();
    const agents = this.agents.get(partition) ?? [];
    // The newest session is the likeliest to be alive when an agent has just reconnected.
    const agent = agents[agents.length - 1];
    if (!agent) {
      throw new ConnectError(
        `no metal-bmc of partition "${partition}" is connected to this replica (${this.replica}); consoles through metal-bmcs attached to other replicas are not supported`,
        Code.FailedPrecondition,
      );
    }
    const relayId = randomUUID();
    const timeoutMs = opts.timeoutMs ?? this.openTimeoutMs;
    const opened = new Promise<Relay>((resolve, reject) => {
      const timer = setTimeout(() => settle(new ConnectError(`metal-bmc "${agent.name}" did not open the console of machine "${id}" within ${timeoutMs} ms`, Code.DeadlineExceeded)), timeoutMs);
      const onAbort = () => settle(new ConnectError("console request cancelled", Code.Canceled));
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      const settle = (err: Error | undefined, relay?: Relay) => {
        if (this.pending.get(relayId)?.settle !== settle) return;
        this.pending.delete(relayId);
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve(relay!);
      };
      this.pending.set(relayId, { partition, machineId: id, outputSince: opts.outputSince, agent, settle });
      if (opts.signal?.aborted) onAbort();
    });
    // Settled before the ask's own outcome is known, so a rejection of `opened` must not go unhandled meanwhile.
    opened.catch(() => {});
    try {
      await agent.ask(relayId, id);
    } catch (err) {
      this.pending.get(relayId)?.settle(err instanceof Error ? err : new Error(String(err)));
    }
    return opened;
  }

  /**
   * The first message of a Relay stream: joins it with the openConsole that
   * asked for it. Undefined when metal-bmc reports that it could not open the
   * console (the asking side gets its error); throws when no such relay was
   * asked for here or the partition does not match. `call` is the Relay
   * stream's signal: when it aborts, the relay ends.
   */
  claim(partition: string, open: { relayId: string; machineId: string; error: string }, call: AbortSignal = new AbortController().signal): RelayEnd | undefined {
    const relayId = open.relayId.toLowerCase();
    const p = this.pending.get(relayId);
    if (!p) throw new ConnectError(`console relay "${relayId}" was not asked for on this replica, or it was given up on`, Code.NotFound);
    if (p.partition !== partition) throw new ConnectError(`console relay "${relayId}" belongs to another partition`, Code.PermissionDenied);
    if (p.machineId !== open.machineId.toLowerCase()) {
      throw new ConnectError(`console relay "${relayId}" is for machine "${p.machineId}", not "${open.machineId}"`, Code.InvalidArgument);
    }
    if (open.error !== "") {
      p.settle(new ConnectError(`metal-bmc could not open the console of machine "${p.machineId}": ${open.error}`, Code.FailedPrecondition));
      return undefined;
    }
    if (call.aborted) {
      p.settle(new ConnectError("console relay cancelled", Code.Canceled));
      return undefined;
    }
    const agent = p.agent;
    const relay = new Relay(relayId, partition, p.machineId, p.outputSince, this.maxBuffered, this.capacity, call, () => agent.relays.delete(relay));
    agent.relays.add(relay);
    p.settle(undefined, relay);
    return relay;
  }
}
