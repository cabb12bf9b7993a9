import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually } from "./eventually.js";
import { freePort } from "./free-port.js";

export const MOSQUITTO = "/usr/sbin/mosquitto";

/** A Mosquitto of the test's own, which it may stop and start again (never the shared one on 1883). */
export interface PrivateBroker {
  readonly port: number;
  /** mqtt://127.0.0.1:<port> */
  readonly url: string;
  /** Starts it again on the same port (after stop). */
  start(): Promise<void>;
  /** Stops it (SIGTERM) and waits until the process is gone. */
  stop(): Promise<void>;
  /** Stops it and removes its configuration directory. */
  dispose(): Promise<void>;
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });

/**
 * Starts /usr/sbin/mosquitto with a configuration in a temporary directory:
 * one listener on 127.0.0.1 and a free port, anonymous clients allowed, no
 * persistence, TCP_NODELAY. `extraConfig` lines are appended (e.g. `allow_anonymous false`
 * is written after the default and wins).
 */
export async function startPrivateBroker(opts: { extraConfig?: string[] } = {}): Promise<PrivateBroker> {
  const dir = await mkdtemp(join(tmpdir(), "metal-mosquitto-"));
  const port = await freePort();
  const conf = join(dir, "mosquitto.conf");
  // set_tcp_nodelay: as in production (docs/replicas.md), small wake-ups are not held back by Nagle's algorithm.
  const lines = [`listener ${port} 127.0.0.1`, "allow_anonymous true", "persistence false", "set_tcp_nodelay true", "log_dest stderr", "log_type error", ...(opts.extraConfig ?? [])];
  // allow_anonymous may be given twice; Mosquitto takes the last one.
  await writeFile(conf, `${lines.join("\n")}\n`);
  let child: ChildProcess | undefined;
  let stderr = "";
  const killOnExit = () => child?.kill("SIGKILL");
  process.once("exit", killOnExit);

  const broker: PrivateBroker = {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    async start() {
      if (child) throw new Error("the private broker runs already");
      stderr = "";
      const p = spawn(MOSQUITTO, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
      p.stderr?.on("data", (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-4000);
      });
      child = p;
      p.once("exit", () => {
        if (child === p) child = undefined;
      });
      await eventually(`mosquitto listening on 127.0.0.1:${port}`, async () => {
        if (!child) throw new Error(`mosquitto exited: ${stderr}`);
        return accepts(port);
      });
    },
    async stop() {
      const p = child;
      if (!p) return;
      const exited = new Promise((resolve) => p.once("exit", resolve));
      p.kill("SIGTERM");
      await exited;
      child = undefined;
    },
    async dispose() {
      await broker.stop();
      process.off("exit", killOnExit);
      await rm(dir, { recursive: true, force: true });
    },
  };
  await broker.start();
  return broker;
}
