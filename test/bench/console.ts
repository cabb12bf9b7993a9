import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGrpcTransport } from "@connectrpc/connect-node";
import ssh2 from "ssh2";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { BmcAgent } from "../../edge/bmc/agent.js";
import { SimBmcs, type SimMachineBmc } from "../../edge/sim/bmc.js";
import { generateEd25519 } from "../../server/console/host-key.js";
import { relayBrokerOf } from "../../server/console/relay-broker.js";
import { setUpPartition } from "../helpers/partition-fixture.js";
import { launchServer } from "../helpers/server-launch.js";
import type { Comparison, Measurement } from "./harness.js";

let SESSIONS = 50;
let KEYSTROKES = 100;
/** Console output per session for the throughput part: CHUNKS chunks of 16 KiB. */
const CHUNK = 16 * 1024;
let CHUNKS = 64;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

function measurement(name: string, ops: number, seconds: number, latencies: number[]): Measurement {
  const sorted = [...latencies].sort((a, b) => a - b);
  return { name, ops, concurrency: SESSIONS, seconds, perSecond: ops / seconds, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) };
}

function within<T>(what: string, p: Promise<T>, ms = 30_000): Promise<T> {
  return Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`bench: timed out waiting for ${what}`)), ms).unref())]);
}

/** Enter, then the prompt: a known state whatever the console showed before (the scrollback may end anywhere). */
async function prompt(taps: ReturnType<typeof tap>[], terminals: Terminal[]): Promise<void> {
  await within(
    "the prompts",
    Promise.all(
      terminals.map((t, i) => {
        const seen = taps[i]!.next("# ");
        t.write("\r");
        return seen;
      }),
    ),
  );
}

async function until(what: string | (() => string), probe: () => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > end) throw new Error(`bench: timed out waiting for ${typeof what === "string" ? what : what()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** What both kinds of console session look like to the bench: write bytes, get told about output. */
interface Terminal {
  write(text: string): void;
  onData(l: (d: Buffer | Uint8Array) => void): void;
  close(): void;
}

/** Counts output bytes and resolves waits for a marker, without keeping the whole output around. */
function tap(t: Terminal) {
  let bytes = 0;
  let tail = "";
  let waiting: { text: string; resolve: () => void } | undefined;
  t.onData((d) => {
    bytes += d.byteLength;
    tail = (tail + Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString("latin1")).slice(-256);
    if (waiting && tail.includes(waiting.text)) {
      const w = waiting;
      waiting = undefined;
      tail = "";
      w.resolve();
    }
  });
  return {
    get bytes() {
      return bytes;
    },
    /** Resolves when `text` shows in output that arrives from now on (or already in the unseen tail). */
    next(text: string): Promise<void> {
      if (tail.includes(text)) {
        tail = "";
        return Promise.resolve();
      }
      return new Promise((resolve) => (waiting = { text, resolve }));
    },
    reset() {
      tail = "";
    },
  };
}

/** One keystroke at a time, each timed until the console's echo of it is back. */
async function keystrokes(taps: ReturnType<typeof tap>[], terminals: Terminal[]): Promise<{ latencies: number[]; seconds: number }> {
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    terminals.map(async (t, i) => {
      const seen = taps[i]!;
      seen.reset();
      for (let k = 0; k < KEYSTROKES; k++) {
        // Distinct letters in a row, so an echo cannot be mistaken for the previous one's.
        const ch = String.fromCharCode(97 + (k % 26));
        const echoed = seen.next(ch);
        const t0 = performance.now();
        t.write(ch);
        await within(`the echo of keystroke ${k} in session ${i}`, echoed, 10_000);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { latencies, seconds: (performance.now() - started) / 1000 };
}

/** The machines print CHUNKS × CHUNK bytes each; timed until every session has received all of it. */
async function output(taps: ReturnType<typeof tap>[], sims: SimMachineBmc[]): Promise<{ bytes: number; latencies: number[]; seconds: number }> {
  const before = taps.map((t) => t.bytes);
  const want = CHUNK * CHUNKS;
  // Exactly CHUNK bytes: printable ASCII ending in a line break.
  const line = "0123456789abcdef".repeat(CHUNK / 16 - 1) + "0123456789abcd\r\n";
  const started = performance.now();
  const latencies: number[] = [];
  await Promise.all(
    sims.map(async (sim, i) => {
      for (let c = 0; c < CHUNKS; c++) {
        sim.serial.print(line);
        // Yield now and then, as a real serial line would not deliver a megabyte in one tick.
        if (c % 8 === 7) await new Promise((r) => setImmediate(r));
      }
      await until(() => `output of session ${i} (${taps[i]!.bytes - before[i]!} of ${want} bytes)`, () => taps[i]!.bytes - before[i]! >= want, 120_000);
      latencies.push(performance.now() - started);
    }),
  );
  return { bytes: want * sims.length, latencies, seconds: (performance.now() - started) / 1000 };
}

/**
 * 50 SSH console sessions at once (ssh2 client library, one connection each,
 * owner key + project token, through metal-console -> relay broker -> BMC
 * session -> metal-bmc -> Relay stream -> simulated serial console):
 * keystroke round trip (one character, timed until its echo is back) and
 * console output throughput (each machine prints 1 MiB). Baseline: the same
 * over the relay broker directly (everything except the SSH layer and its
 * access checks), in the same run.
 */
export async function benchConsole(opts: { sessions?: number; keystrokes?: number; chunks?: number } = {}): Promise<Comparison[]> {
  SESSIONS = opts.sessions ?? 50;
  KEYSTROKES = opts.keystrokes ?? 100;
  CHUNKS = opts.chunks ?? 64;
  const { server, stop } = await launchServer({ console: true });
  const dir = await mkdtemp(join(tmpdir(), "metal-bench-console-"));
  const sims = new SimBmcs();
  const abort = new AbortController();
  let agentDone: Promise<void> | undefined;
  const clients: ssh2.Client[] = [];
  let stopMachines = () => {};
  try {
    const fixture = await setUpPartition(server);
    stopMachines = () => fixture.stopAll();
    const leaseFile = join(dir, "dhcpd.leases");
    const infra = fixture.infraToken;
    const agent = new BmcAgent({
      transport: createGrpcTransport({ baseUrl: server.url, interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${infra}`), next(req))] }),
      partition: "p1",
      agent: "bmc-bench",
      leaseFile,
      stateDir: join(dir, "state"),
      adapter: sims,
      credentials: { user: "ADMIN", password: "ADMIN", interface: "lanplus", port: 623 },
      timing: { pollMs: 100, fullReportMs: 2_000, heartbeatMs: 1_000, idleMs: 10_000, backoff: { initialMs: 20, maxMs: 200 } },
    });
    agentDone = agent.run(abort.signal);

    const owner = (await server.client(AdminTokens, server.adminToken).create({ subject: "bench-owner", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
    const key = generateEd25519();
    const machines: SimMachineBmc[] = [];
    for (let i = 0; i < SESSIONS; i++) {
      const booted = await fixture.bootMachine(i % 2 === 0 ? "r1" : "r2");
      machines.push(sims.add({ uuid: booted.id, ip: `10.4.${Math.floor(i / 200)}.${(i % 200) + 10}`, mac: `aa:bb:cc:04:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}` }));
    }
    await sims.writeLeases(leaseFile);
    const admin = server.client(AdminMachineService, server.adminToken);
    for (const m of machines) {
      const id = m.uuid;
      let ok = false;
      for (let t = 0; t < 600 && !ok; t++) {
        ok = !!(await admin.get({ id })).machine?.bmc?.address;
        if (!ok) await new Promise((r) => setTimeout(r, 50));
      }
      if (!ok) throw new Error(`bench: no BMC report for ${id}`);
    }
    for (let i = 0; i < SESSIONS; i++) {
      await server.client(MachineService, owner).create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: `bench-${i}`, networks: [fixture.primary.pb], sshKeys: [key.public] });
    }
    await until("metal-bmc offers relays", () => relayBrokerOf(server.app.db).agentsOf("p1").length > 0);

    // The subject: SSH sessions.
    const port = server.console!.port;
    const sshTerminals: Terminal[] = await Promise.all(
      machines.map(
        (m) =>
          new Promise<Terminal>((resolve, reject) => {
            const c = new ssh2.Client();
            clients.push(c);
            c.once("error", reject);
            c.once("ready", () =>
              c.shell({ term: "xterm", cols: 80, rows: 24 }, { env: { LC_METAL_TOKEN: owner } }, (err, ch) => {
                if (err) return reject(err);
                resolve({ write: (t) => ch.write(t), onData: (l) => ch.on("data", l), close: () => (ch.end(), c.end()) });
              }),
            );
            c.connect({ host: "127.0.0.1", port, username: m.uuid, privateKey: key.private });
          }),
      ),
    );
    const sshTaps = sshTerminals.map(tap);
    await prompt(sshTaps, sshTerminals);
    if (server.console!.sessions !== SESSIONS) throw new Error(`bench: ${server.console!.sessions} console sessions open, wanted ${SESSIONS}`);
    const sshKeys = await keystrokes(sshTaps, sshTerminals);
    const sshOut = await output(sshTaps, machines);
    for (const t of sshTerminals) t.close();
    await until(() => `SSH sessions closed (${server.console!.sessions} open, ${machines.filter((m) => m.serial.attachments > 0).length} attached)`, () => server.console!.sessions === 0 && machines.every((m) => m.serial.attachments === 0), 10_000);

    // The baseline: the same over the broker.
    const broker = relayBrokerOf(server.app.db);
    const relays = await Promise.all(machines.map((m) => broker.openConsole("p1", m.uuid)));
    const relayTerminals: Terminal[] = relays.map((r) => ({ write: (t) => r.write(t), onData: (l) => void r.onData(l), close: () => r.close() }));
    const relayTaps = relayTerminals.map(tap);
    await prompt(relayTaps, relayTerminals);
    const relayKeys = await keystrokes(relayTaps, relayTerminals);
    const relayOut = await output(relayTaps, machines);
    for (const t of relayTerminals) t.close();

    const MiB = 2 ** 20;
    return [
      {
        what: `console keystroke round trip, ${SESSIONS} SSH sessions at once × ${KEYSTROKES} keys (baseline: the same over the relay broker, no SSH)`,
        subject: measurement("keystroke -> echo over SSH", sshKeys.latencies.length, sshKeys.seconds, sshKeys.latencies),
        baseline: measurement("keystroke -> echo over the relay broker", relayKeys.latencies.length, relayKeys.seconds, relayKeys.latencies),
        target: "responsive: p99 well under 100 ms",
      },
      {
        what: `console output, ${SESSIONS} SSH sessions at once × ${(CHUNK * CHUNKS) / MiB} MiB (ops = bytes; p50/p99 = time until a session had all of it; baseline: the relay broker)`,
        subject: measurement("console output bytes over SSH", sshOut.bytes, sshOut.seconds, sshOut.latencies),
        baseline: measurement("console output bytes over the relay broker", relayOut.bytes, relayOut.seconds, relayOut.latencies),
        extra: { sshMiBPerSecond: sshOut.bytes / MiB / sshOut.seconds, brokerMiBPerSecond: relayOut.bytes / MiB / relayOut.seconds },
      },
    ];
  } finally {
    for (const c of clients) c.end();
    stopMachines();
    abort.abort();
    await agentDone?.catch(() => {});
    await stop();
    await rm(dir, { recursive: true, force: true });
  }
}
