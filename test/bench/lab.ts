import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createTransport } from "../../client/transport.js";
import { FAST_TIMINGS, INTERACTIVE_TIMINGS, Lab, type LabTimings } from "../../edge/lab/lab.js";
import { LAB } from "../../edge/lab/seed.js";
import { MachineService as AdminMachineService, BmcCommand } from "../../gen/metal/admin/v1/machine_pb.js";
import { type Machine, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { loadConfig } from "../../server/config.js";
import { createLogger } from "../../server/logger.js";
import { createScratchDatabase } from "../helpers/postgres.js";
import { type Comparison, type Measurement, measure } from "./harness.js";

const MACHINES = Number(process.env.BENCH_LAB_MACHINES ?? 200);

/** Percentile of sorted numbers. */
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

async function until(what: string, probe: () => Promise<boolean>, timeoutMs: number, state?: () => Promise<string>): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${state ? `: ${await state()}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * DESIGN §7 "lab: 200 simulated machines PXE -> Waiting < 30 s". The lab
 * (control plane on PostgreSQL, two leaves on metal-core, metal-bmc, pixie,
 * a metal-hammer per machine, all in this process) boots its machines once;
 * then every machine is power-cycled through its BMC at once, and the wall
 * time runs from the first Planned Reboot to the last Waiting (server event
 * times), with each machine's own reboot -> Waiting as its latency. The
 * baseline is the same number of bare BootService.Register calls (200 at
 * once, the machines' own inventories) on the same control plane: the one
 * database-heavy step of each boot.
 */
export async function benchLabBoot(): Promise<Comparison[]> {
  const metalDb = await createScratchDatabase("bench_lab_metal");
  const mdDb = await createScratchDatabase("bench_lab_md");
  const dir = await mkdtemp(join(tmpdir(), "metal-lab-bench-"));
  const config = loadConfig({
    METAL_LISTEN: "127.0.0.1:0",
    METAL_CONSOLE_LISTEN: "127.0.0.1:0",
    METAL_DATA_DIR: join(dir, "data"),
    DATABASE_URL: metalDb.url,
    MASTERDATA_DATABASE_URL: mdDb.url,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "silent",
  });
  const started = performance.now();
  // The daemons at their interactive pace (Alive every minute, BMC polls every 5 s): the tests' fast loops, times 200
  // machines, would measure Alive events and BMC polls rather than boots. Retries stay fast.
  const timings: LabTimings = { ...INTERACTIVE_TIMINGS, hammer: { backoff: FAST_TIMINGS.hammer.backoff }, pxeRetryMs: FAST_TIMINGS.pxeRetryMs, drainMs: FAST_TIMINGS.drainMs };
  const lab = await Lab.start({ config, log: createLogger(config.logLevel, { pretty: false }), machines: MACHINES, labListen: "127.0.0.1:0", timings, metalctlConfig: false, frrCheck: false });
  try {
    const admin = createClient(AdminMachineService, createTransport({ baseUrl: lab.apiUrl, protocol: "connect", binary: true, token: lab.adminToken }));
    const all = async (): Promise<Machine[]> => {
      const out: Machine[] = [];
      let pageToken = "";
      do {
        const r = await admin.list({ partition: LAB.partition, paging: { limit: 1000, pageToken } });
        out.push(...r.machines);
        pageToken = r.nextPageToken;
      } while (pageToken);
      return out;
    };
    const ids = new Set(lab.machines.map((m) => m.uuid));
    const allWaiting = async () => {
      const ms = (await all()).filter((m) => ids.has(m.id));
      return ms.length === MACHINES && ms.every((m) => m.waiting && m.events?.log[0]?.type === T.WAITING);
    };
    const state = async () => {
      const counts = new Map<string, number>();
      for (const m of (await all()).filter((x) => ids.has(x.id))) {
        const k = `${T[m.events?.log[0]?.type ?? 0]}${m.waiting ? " (waiting)" : ""}`;
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
      return JSON.stringify(Object.fromEntries(counts));
    };
    await until("the first boot of every machine", allWaiting, 120_000, state);
    const coldSeconds = (performance.now() - started) / 1000;

    // Every machine power-cycled through its BMC at once: Planned Reboot, PXE, metal-hammer, Waiting.
    const t0 = performance.now();
    await Promise.all(lab.machines.map((m) => admin.bMCCommand({ id: m.uuid, command: BmcCommand.CYCLE })));
    await until("every machine to wait again after the cycle", async () => lab.machines.every((m) => m.pxeBoots >= 2) && (await allWaiting()), 120_000, state);
    const pollSeconds = (performance.now() - t0) / 1000;
    const latencies: number[] = [];
    let first = Infinity;
    let last = 0;
    for (const m of (await all()).filter((x) => ids.has(x.id))) {
      const log = m.events!.log;
      const reboot = log.findIndex((e) => e.type === T.PLANNED_REBOOT);
      const from = timestampMs(log[reboot]!.time!);
      const to = timestampMs(log[0]!.time!);
      latencies.push(to - from);
      first = Math.min(first, from);
      last = Math.max(last, to);
    }
    latencies.sort((a, b) => a - b);
    const wall = (last - first) / 1000;
    const subject: Measurement = {
      name: `lab: ${MACHINES} machines PXE -> Waiting`,
      ops: MACHINES,
      concurrency: MACHINES,
      seconds: wall,
      perSecond: MACHINES / wall,
      p50Ms: pct(latencies, 0.5),
      p99Ms: pct(latencies, 0.99),
    };

    // Baseline: a bare Register call per machine (what its hammer sends, same hardware and cabling), all at once.
    const boot = createClient(BootService, createTransport({ baseUrl: lab.apiUrl, protocol: "grpc", token: lab.infraToken }));
    const inventories = await Promise.all(lab.machines.map((m) => m.sim.inventory()));
    const baseline = await measure(`${MACHINES} bare BootService.Register`, MACHINES, MACHINES, (i) => {
      const inv = inventories[i]!;
      return boot.register({
        partition: LAB.partition,
        machineId: inv.uuid,
        hardware: {
          memory: inv.memoryBytes,
          cpus: inv.cpus,
          disks: inv.disks.map((d) => ({ name: d.name, size: d.sizeBytes })),
          nics: inv.nics.map((n) => ({ name: n.name, mac: n.mac, neighbors: n.neighbors })),
        },
      });
    });
    console.log(
      `lab boot: ${MACHINES} machines PXE -> Waiting in ${wall.toFixed(2)} s (event times; ${pollSeconds.toFixed(2)} s seen by polling), p50 ${subject.p50Ms.toFixed(0)} ms, p99 ${subject.p99Ms.toFixed(0)} ms per machine; ` +
        `cold start incl. migrations and first boot ${coldSeconds.toFixed(2)} s; baseline ${MACHINES} bare Register calls ${baseline.seconds.toFixed(2)} s`,
    );
    return [
      {
        what: `lab: ${MACHINES} simulated machines PXE -> Waiting (BMC power cycle of all at once; wall ${wall.toFixed(2)} s)`,
        subject,
        baseline,
        target: "< 30 s wall",
        extra: { wallSeconds: wall, coldStartSeconds: coldSeconds, polledSeconds: pollSeconds },
      },
    ];
  } finally {
    await lab.stop();
    await Promise.all([metalDb.drop(), mdDb.drop(), rm(dir, { recursive: true, force: true })]);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { report } = await import("./harness.js");
  report(await benchLabBoot());
}
