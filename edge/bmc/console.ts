import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate, timestampNow } from "@bufbuild/protobuf/wkt";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { AsyncQueue } from "../../client/async-queue.js";
import type { BmcOpenConsole } from "../../gen/metal/infra/v1/bmc_pb.js";
import { ConsoleService, type ConsoleServiceRelayRequestSchema } from "../../gen/metal/infra/v1/console_pb.js";
import { type BmcTarget, identityMismatch } from "./adapter.js";

/**
 * One attachment to a machine's serial console. The IPMI implementation runs
 * `ipmitool sol activate`; the simulated BMCs (edge/sim/bmc.ts) implement it
 * in memory.
 */
export interface SerialConsole {
  /** Input for the machine (keystrokes). */
  write(data: Uint8Array): void;
  /** The user's terminal size; a plain serial line has none, so implementations may ignore it. */
  resize?(columns: number, rows: number): void;
  /**
   * Console output with the time the machine printed it: the time of arrival
   * for live output; for scrollback the BMC replays on attaching (what the
   * machine printed before), the time it was first seen, or the Unix epoch
   * when that is unknown. The control plane withholds output from before the
   * current allocation by this time, so replayed scrollback must never carry
   * the time of the replay.
   */
  onData(listener: (data: Uint8Array, producedAt: Date) => void): void;
  /** Called once when the console ends from its side (the BMC dropped the session, ipmitool exited). */
  onClose(listener: (reason?: string) => void): void;
  /** Detaches; idempotent. */
  close(): void;
}

export interface ConsoleAdapter {
  /** Attaches to the serial console of the machine behind the BMC; rejects with a message fit for the user. */
  openConsole(target: BmcTarget, machineId: string, signal?: AbortSignal): Promise<SerialConsole>;
}

export const isConsoleAdapter = (a: unknown): a is ConsoleAdapter => typeof (a as Partial<ConsoleAdapter>)?.openConsole === "function";

type RelayRequest = MessageInitShape<typeof ConsoleServiceRelayRequestSchema>;

export interface ConsoleRelaysOptions {
  transport: Transport;
  partition: string;
  /** Undefined: every relay is answered with an error, so the user learns this agent has no console access. */
  adapter: ConsoleAdapter | undefined;
  /** The machine UUID the BMC at a target reports; a console opens only when it is the machine asked for. */
  identify?: (target: BmcTarget, signal: AbortSignal) => Promise<string>;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/**
 * metal-bmc's side of console relays: when its session asks, it attaches to
 * the machine's serial console and opens a ConsoleService.Relay stream to
 * the control plane (outbound, like everything of the partition), copying
 * bytes both ways until either end closes.
 */
export class ConsoleRelays {
  private readonly client: Client<typeof ConsoleService>;
  private readonly open = new Set<AbortController>();

  constructor(private readonly opts: ConsoleRelaysOptions) {
    this.client = createClient(ConsoleService, opts.transport);
  }

  /** Relays currently open. */
  get count(): number {
    return this.open.size;
  }

  /** Runs one relay; `session` is the BMC session that asked, and ending it ends the relay. */
  async relay(req: BmcOpenConsole, target: BmcTarget | undefined, session: AbortSignal): Promise<void> {
    const abort = new AbortController();
    const stop = () => abort.abort();
    session.addEventListener("abort", stop, { once: true });
    this.open.add(abort);
    let serial: SerialConsole | undefined;
    const queue = new AsyncQueue<RelayRequest>();
    try {
      let error = "";
      if (!this.opts.adapter) error = "this metal-bmc has no console access";
      else if (!target) error = "no BMC address is known for the machine";
      else {
        try {
          // Someone else's console must never open because a stored address points at their BMC.
          const mismatch = this.opts.identify && identityMismatch(req.machineId, await this.opts.identify(target, abort.signal), req.address);
          if (mismatch) error = `console not opened: ${mismatch}`;
          else serial = await this.opts.adapter.openConsole(target, req.machineId, abort.signal);
        } catch (err) {
          error = (err instanceof Error ? err.message : String(err)).slice(0, 4096);
        }
      }
      queue.push({ partition: this.opts.partition, kind: { case: "open", value: { relayId: req.relayId, machineId: req.machineId, error, sentAt: timestampNow() } } });
      if (!serial || abort.signal.aborted) {
        // The open with its error is all the server needs; the relay ends right after it.
        queue.close();
      } else {
        serial.onData((data, producedAt) => {
          const at = timestampFromDate(producedAt);
          // Large bursts (a boot log) go up in pieces the server accepts.
          for (let i = 0; i < data.length; i += 32 * 1024) queue.push({ kind: { case: "data", value: data.subarray(i, i + 32 * 1024) }, producedAt: at });
        });
        serial.onClose((reason) => {
          this.opts.log?.("console closed by the machine side", { relay: req.relayId, machine: req.machineId, reason });
          queue.close();
        });
      }
      for await (const res of this.client.relay(queue, { signal: abort.signal })) {
        if (res.kind.case === "data") serial?.write(res.kind.value);
        else if (res.kind.case === "windowSize") serial?.resize?.(res.kind.value.columns, res.kind.value.rows);
      }
    } catch (err) {
      if (!abort.signal.aborted) this.opts.log?.("console relay failed", { relay: req.relayId, machine: req.machineId, err: err instanceof Error ? err.message : String(err) });
    } finally {
      serial?.close();
      queue.close();
      abort.abort();
      this.open.delete(abort);
      session.removeEventListener("abort", stop);
    }
  }

  /** Ends every relay (the agent stops). */
  closeAll(): void {
    for (const a of this.open) a.abort();
  }
}
