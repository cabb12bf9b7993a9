import { createClient } from "@connectrpc/connect";
import ssh2 from "ssh2";
import { createTransport } from "../../client/transport.js";
import { FAST_TIMINGS, INTERACTIVE_TIMINGS, type LabMachine, type LabTimings } from "../../edge/lab/lab.js";
import { LAB } from "../../edge/lab/seed.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { generateEd25519 } from "../../server/console/host-key.js";
import { eventually, startLabUnderTest } from "../e2e/lab-harness.js";
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

/**
 * A line the simulated OS does not know, then its answer and the login prompt after it: a known state whatever the
 * console showed before (the scrollback ends anywhere, and holds the previous phase's answers, hence a marker per phase).
 */
async function prompt(taps: ReturnType<typeof tap>[], terminals: Terminal[], marker: string): Promise<void> {
  await within(
    "the prompts",
    Promise.all(
      terminals.map(async (t, i) => {
        const answered = taps[i]!.next(`${marker}: command not found\r\n`);
        t.write(`${marker}\r`);
        await answered;
        await taps[i]!.next("login: ");
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

/**
 * One keystroke and Enter at a time, each timed until the simulated OS's answer is back through the same session
 * (the lab's machines answer a line, not each character): the echoed line, "x: command not found", and the login
 * prompt, which comes last, so every prompt seen after a write answers that write.
 */
async function keystrokes(taps: ReturnType<typeof tap>[], terminals: Terminal[]): Promise<{ latencies: number[]; seconds: number }> {
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    terminals.map(async (t, i) => {
      const seen = taps[i]!;
      for (let k = 0; k < KEYSTROKES; k++) {
        const answered = seen.next("login: ");
        const t0 = performance.now();
        t.write(`${String.fromCharCode(97 + (k % 26))}\r`);
        await within(`the answer to keystroke ${k} in session ${i}`, answered, 10_000);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { latencies, seconds: (performance.now() - started) / 1000 };
}

/**
 * The machines print CHUNKS × CHUNK bytes each on their serial line (what the BMC's console reads); timed until
 * every session has received all of it.
 */
async function output(taps: ReturnType<typeof tap>[], machines: LabMachine[]): Promise<{ bytes: number; latencies: number[]; seconds: number }> {
  const before = taps.map((t) => t.bytes);
  const want = CHUNK * CHUNKS;
  // Exactly CHUNK bytes: printable ASCII ending in a line break.
  const line = "0123456789abcdef".repeat(CHUNK / 16 - 1) + "0123456789abcd\r\n";
  const started = performance.now();
  const latencies: number[] = [];
  await Promise.all(
    machines.map(async (m, i) => {
      for (let c = 0; c < CHUNKS; c++) {
        // The simulated OS only prints answers; output of this volume is pushed onto its serial line directly.
        m.sim.console.push(line);
        // Yield now and then, as a real serial line would not deliver a megabyte in one tick.
        if (c % 8 === 7) await new Promise((r) => setImmediate(r));
      }
      await until(
        () => `output of session ${i} (${taps[i]!.bytes - before[i]!} of ${want} bytes)`,
        () => taps[i]!.bytes - before[i]! >= want,
        120_000,
      );
      latencies.push(performance.now() - started);
    }),
  );
  return { bytes: want * machines.length, latencies, seconds: (performance.now() - started) / 1000 };
}

/**
 * The daemons at their interactive pace, retries fast (as the lab boot bench): the tests' fast loops, times 50
 * machines, would put BMC polls and Alive events into the console's figures.
 */
const BENCH_TIMINGS: LabTimings = { ...INTERACTIVE_TIMINGS, hammer: { backoff: FAST_TIMINGS.hammer.backoff }, pxeRetryMs: FAST_TIMINGS.pxeRetryMs, drainMs: FAST_TIMINGS.drainMs };

/**
 * 50 SSH console sessions at once in the lab (metal-lab with 50 simulated
 * machines, each allocated by a project member with one SSH key and running
 * its installed OS; ssh2 client library, one connection each, owner key +
 * project token, through metal-console -> relay broker -> BMC session ->
 * the lab's metal-bmc -> Relay stream -> simulated BMC -> the machine's serial
 * line): keystroke round trip (a key and Enter, timed until the OS's answer is
 * back) and console output throughput (each machine prints 1 MiB). Baseline:
 * the same over the relay broker directly (everything except the SSH layer
 * and its access checks), in the same lab and run.
 */
export async function benchConsole(opts: { sessions?: number; keystrokes?: number; chunks?: number } = {}): Promise<Comparison[]> {
  SESSIONS = opts.sessions ?? 50;
  KEYSTROKES = opts.keystrokes ?? 100;
  CHUNKS = opts.chunks ?? 64;
  const t = await startLabUnderTest(SESSIONS, BENCH_TIMINGS);
  const clients: ssh2.Client[] = [];
  try {
    const lab = t.lab;
    const admin = t.admin(AdminMachineService);
    await eventually(
      `${SESSIONS} waiting machines with their BMCs reported`,
      async () => {
        const all = (await admin.list({ partition: LAB.partition, paging: { limit: 1000 } })).machines;
        return all.length === SESSIONS && all.every((m) => m.waiting && m.events?.log[0]?.type === T.WAITING && m.bmc?.address);
      },
      120_000,
    );
    const owner = (await t.admin(AdminTokens).create({ subject: "bench-owner", roles: { projectRoles: { [LAB.project]: ProjectRole.EDITOR } } })).secret;
    const key = generateEd25519();
    const tenant = createClient(MachineService, createTransport({ baseUrl: lab.apiUrl, protocol: "connect", binary: true, token: owner }));
    for (let i = 0; i < SESSIONS; i++) {
      // Retried: a machine that shows Waiting may not be a candidate yet (its liveliness or Wait lease lags a moment behind).
      const allocate = () => tenant.create({ project: LAB.project, partition: LAB.partition, size: LAB.size, image: "debian-12", hostname: `bench-${i}`, networks: [lab.projectNetwork], sshKeys: [key.public] });
      await eventually(`allocation ${i}`, allocate, 60_000);
    }
    const machines = lab.machines;
    // Installed and kexec'd: from here on each console shows a login prompt and answers lines.
    await eventually("every machine to run its installed OS", () => machines.every((m) => m.sim.os !== undefined), 180_000);
    await until("metal-bmc offers relays", () => lab.app!.relayBroker.agentsOf(LAB.partition).length > 0);

    // The subject: SSH sessions.
    const [host, port] = [lab.consoleAddress.slice(0, lab.consoleAddress.lastIndexOf(":")), Number(lab.consoleAddress.slice(lab.consoleAddress.lastIndexOf(":") + 1))];
    const attached = () => machines.filter((m) => m.bmc.serial.attachments > 0).length;
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
            c.connect({ host, port, username: m.uuid, privateKey: key.private });
          }),
      ),
    );
    const sshTaps = sshTerminals.map(tap);
    await prompt(sshTaps, sshTerminals, "ssh-ready");
    if (attached() !== SESSIONS) throw new Error(`bench: ${attached()} serial consoles attached, wanted ${SESSIONS}`);
    const sshKeys = await keystrokes(sshTaps, sshTerminals);
    const sshOut = await output(sshTaps, machines);
    for (const s of sshTerminals) s.close();
    await until(
      () => `SSH sessions closed (${attached()} serial consoles still attached)`,
      () => attached() === 0,
      10_000,
    );

    // The baseline: the same over the broker.
    const broker = lab.app!.relayBroker;
    const relays = await Promise.all(machines.map((m) => broker.openConsole(LAB.partition, m.uuid)));
    const relayTerminals: Terminal[] = relays.map((r) => ({ write: (t) => r.write(t), onData: (l) => void r.onData(l), close: () => r.close() }));
    const relayTaps = relayTerminals.map(tap);
    await prompt(relayTaps, relayTerminals, "relay-ready");
    const relayKeys = await keystrokes(relayTaps, relayTerminals);
    const relayOut = await output(relayTaps, machines);
    for (const r of relayTerminals) r.close();

    const MiB = 2 ** 20;
    return [
      {
        what: `lab console keystroke round trip, ${SESSIONS} SSH sessions at once × ${KEYSTROKES} keys (baseline: the same over the relay broker, no SSH)`,
        subject: measurement("keystroke + Enter -> answer over SSH", sshKeys.latencies.length, sshKeys.seconds, sshKeys.latencies),
        baseline: measurement("keystroke + Enter -> answer over the relay broker", relayKeys.latencies.length, relayKeys.seconds, relayKeys.latencies),
        target: "responsive: p99 well under 100 ms",
      },
      {
        what: `lab console output, ${SESSIONS} SSH sessions at once × ${(CHUNK * CHUNKS) / MiB} MiB (ops = bytes; p50/p99 = time until a session had all of it; baseline: the relay broker)`,
        subject: measurement("console output bytes over SSH", sshOut.bytes, sshOut.seconds, sshOut.latencies),
        baseline: measurement("console output bytes over the relay broker", relayOut.bytes, relayOut.seconds, relayOut.latencies),
        extra: { sshMiBPerSecond: sshOut.bytes / MiB / sshOut.seconds, brokerMiBPerSecond: relayOut.bytes / MiB / relayOut.seconds },
      },
    ];
  } finally {
    for (const c of clients) c.end();
    await t.dispose();
  }
}
