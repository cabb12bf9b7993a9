import { connect, type Socket } from "node:net";
import type { BmcAdapter, BmcCommandName, BmcInfo, BmcTarget } from "../../edge/bmc/adapter.js";

/**
 * The BMC of the test's QEMU machine, for a real metal-bmc agent: QEMU has
 * no BMC of its own, so its monitor (QMP, a Unix socket) plays one. The
 * lease file names one address; whatever target the agent asks for, this
 * machine answers.
 *
 * Boot-device commands are accepted and change nothing: the machine is
 * started with `-boot order=n`, so it always boots from the network first,
 * and pixie decides what it boots (the discovery image for a free machine).
 * A real server's BMC stores the order; pixie's answer is the same.
 */
export class QemuBmc implements BmcAdapter {
  /** The commands carried out, in order, for the test to look at. */
  readonly executed: BmcCommandName[] = [];

  constructor(
    private readonly qmpSocket: string,
    private readonly uuid: string,
  ) {}

  async query(_target: BmcTarget, signal?: AbortSignal): Promise<BmcInfo> {
    const status = (await qmp(this.qmpSocket, "query-status", signal)) as { running?: boolean; status?: string };
    return { uuid: this.uuid, firmware: "qemu-qmp", powerState: status.running ? "ON" : "OFF", fru: { "Product Name": "QEMU test machine" } };
  }

  async identify(): Promise<string> {
    return this.uuid;
  }

  async execute(_target: BmcTarget, command: BmcCommandName, signal?: AbortSignal): Promise<string> {
    this.executed.push(command);
    switch (command) {
      case "RESET":
      case "CYCLE":
        await qmp(this.qmpSocket, "system_reset", signal);
        return "reset";
      case "POWER_OFF":
        await qmp(this.qmpSocket, "stop", signal);
        return "stopped";
      case "POWER_ON":
        await qmp(this.qmpSocket, "cont", signal);
        return "running";
      default:
        return `${command}: nothing to do on QEMU`;
    }
  }
}

/** One QMP command on a fresh connection: read the greeting, enter command mode, run it, return its answer. */
export function qmp(socket: string, command: string, signal?: AbortSignal): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const conn: Socket = connect(socket);
    let buffered = "";
    let stage: "greeting" | "capabilities" | "command" = "greeting";
    const fail = (err: Error) => {
      conn.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`QMP ${command}: no answer`)), 10_000);
    signal?.addEventListener("abort", () => fail(new Error("aborted")), { once: true });
    conn.on("error", fail);
    conn.on("close", () => clearTimeout(timer));
    conn.on("data", (chunk) => {
      buffered += chunk.toString();
      let nl = buffered.indexOf("\n");
      while (nl >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf("\n");
        if (line === "") continue;
        const msg = JSON.parse(line) as { QMP?: unknown; return?: unknown; error?: { desc?: string }; event?: string };
        if (msg.event) continue;
        if (msg.error) return fail(new Error(`QMP ${command}: ${msg.error.desc ?? "error"}`));
        if (stage === "greeting" && msg.QMP) {
          stage = "capabilities";
          conn.write('{"execute":"qmp_capabilities"}\n');
        } else if (stage === "capabilities" && "return" in msg) {
          stage = "command";
          conn.write(`${JSON.stringify({ execute: command })}\n`);
        } else if (stage === "command" && "return" in msg) {
          clearTimeout(timer);
          conn.end();
          resolve(msg.return);
        }
      }
    });
  });
}
