import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createReadStream, existsSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import net from "node:net";
import { join } from "node:path";

/** Pieces of the real-boot test: network namespaces, processes inside them, relays across them. */

export const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

export function ip(...args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

/** Runs `cmd` to completion inside `ns` (or here, with ns undefined); throws with its output when it fails. */
export function runIn(ns: string | undefined, cmd: string[]): string {
  const argv = ns ? ["ip", "netns", "exec", ns, ...cmd] : cmd;
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.trim()} ${r.stdout.trim()}`);
  return r.stdout;
}

/** Long-running processes of a test and the lines they printed; kills them all on close. */
export class Processes {
  readonly children: ChildProcess[] = [];
  readonly logs: string[] = [];

  /** Starts `cmd` in `ns`, its output into `logs` under `name`; resolves once a line matches `ready` (or at once without). */
  start(ns: string, name: string, cmd: string[], ready?: RegExp): Promise<ChildProcess> {
    // A process group of its own: killAll ends what it forked too (lldpd's privilege-separated half, for one),
    // so nothing of one test lingers into the next.
    const proc = spawn("ip", ["netns", "exec", ns, ...cmd], { stdio: ["ignore", "pipe", "pipe"], detached: true });
    this.children.push(proc);
    return new Promise((resolve, reject) => {
      if (!ready) resolve(proc);
      const onData = (chunk: Buffer) => {
        for (const line of chunk.toString().split("\n")) {
          if (line.trim() === "") continue;
          this.logs.push(`${name}: ${line}`);
          if (ready?.test(line)) resolve(proc);
        }
      };
      proc.stdout!.on("data", onData);
      proc.stderr!.on("data", onData);
      proc.once("exit", (code, signal) => {
        // Kept in the log: a process that dies later (after it was ready) shows in a test's diagnosis.
        this.logs.push(`${name}: exited (${code ?? signal})`);
        reject(new Error(`${name} exited (${code}) before it was ready:\n${this.logs.filter((l) => l.startsWith(name)).join("\n")}`));
      });
    });
  }

  killAll(): void {
    for (const c of this.children) {
      if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) continue;
      try {
        process.kill(-c.pid, "SIGKILL");
      } catch {
        c.kill("SIGKILL");
      }
    }
  }
}

/**
 * Forwards TCP connections on host:port inside a namespace to a Unix socket:
 * no network namespace separates Unix sockets, so the test process serves
 * the namespace's machines without touching the host's routes.
 */
export const RELAY = `
const net = require("node:net");
const [host, port, path] = process.argv.slice(1);
net.createServer((c) => {
  const u = net.connect(path);
  c.pipe(u).pipe(c);
  c.on("error", () => u.destroy());
  u.on("error", () => c.destroy());
}).listen(Number(port), host, () => console.log("relay ready"));
`;

/** A Unix socket whose connections go on to a TCP port of this (root) namespace. */
export function unixToTcp(path: string, host: string, port: number): Promise<net.Server> {
  const server = net.createServer((c) => {
    const t = net.connect(port, host);
    c.pipe(t).pipe(c);
    c.on("error", () => t.destroy());
    t.on("error", () => c.destroy());
  });
  return new Promise((resolve, reject) => server.once("error", reject).listen(path, () => resolve(server)));
}

/** Serves `/images/metal-hammer/<file>` from `dir` (the discovery image); false for any other URL. */
export function serveImage(dir: string, req: IncomingMessage, res: ServerResponse): boolean {
  const m = /^\/images\/metal-hammer\/(vmlinuz|initrd\.img)$/.exec(req.url ?? "");
  if (!m) return false;
  const file = join(dir, m[1]!);
  if (!existsSync(file)) {
    res.writeHead(404).end();
    return true;
  }
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": statSync(file).size });
  createReadStream(file).pipe(res);
  return true;
}
