import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { createTransport } from "../../client/transport.js";
import { freePort } from "../helpers/free-port.js";
import { type PrivateBroker, startPrivateBroker } from "../helpers/mosquitto.js";
import { createScratchDatabase } from "../helpers/postgres.js";
import type { TestServer } from "../helpers/server-launch.js";

/**
 * A broker to use instead of the bench's own Mosquitto, e.g. the system's at
 * mqtt://127.0.0.1:1883. By default each set of replicas gets a Mosquitto of its
 * own, configured as docs/replicas.md asks of a production broker
 * (`set_tcp_nodelay true`): a broker with Nagle's algorithm on holds each
 * wake-up for the receiver's delayed ACK, which put the allocation -> Wait p50
 * across replicas at 29 ms instead of 7 ms on this machine. Either way the
 * topic prefix is the run's own, so runs do not hear each other.
 */
const BENCH_MQTT_URL = process.env.BENCH_MQTT_URL;
/** Each replica's metal pool: the production default, so one replica and two compare as deployed. */
const DB_POOL = process.env.BENCH_REPLICA_DB_POOL ?? "20";
/** Extra node flags for every replica, e.g. "--cpu-prof --cpu-prof-dir=prof" to profile them. */
const NODE_ARGS = (process.env.BENCH_REPLICA_NODE_ARGS ?? "").split(" ").filter(Boolean);

/** One metal-api process. */
export interface Replica {
  proc: ChildProcess;
  url: string;
  /** The last 20 KB of its output, printed when a bench fails. */
  output(): string;
  /** A Connect (JSON over HTTP/1.1) client of this replica. */
  client<S extends DescService>(service: S, token: string): Client<S>;
  /** A gRPC client on a connection of its own (HTTP/2 h2c): one per call, so callers decide how streams share connections. */
  grpcClient<S extends DescService>(service: S, token: string): Client<S>;
}

export interface ReplicaSet {
  replicas: Replica[];
  adminToken: string;
  metalDatabaseUrl: string;
  /** The MQTT topic prefix of this set, undefined when it runs on the in-process bus (one replica). */
  topicPrefix: string | undefined;
  /** The broker's URL, undefined on the in-process bus. */
  mqttUrl: string | undefined;
  /** Replica `i` shaped as the test fixtures want it (setUpPartition needs only clients and the admin token). */
  asTestServer(i: number): TestServer;
  stop(): Promise<void>;
}

export { freePort } from "../helpers/free-port.js";

/** bin/metal-api.js (the bundle users run) once it says where it listens. */
async function startReplica(env: NodeJS.ProcessEnv): Promise<Omit<Replica, "client" | "grpcClient">> {
  const proc = spawn(process.execPath, [...NODE_ARGS, "bin/metal-api.js"], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (d: Buffer) => (out = (out + d).slice(-20_000));
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Not left behind: nobody else knows this process yet.
      proc.kill("SIGKILL");
      reject(new Error(`metal-api did not start within 120 s:\n${out}`));
    }, 120_000);
    const onData = () => {
      const m = /metal-api listening on (http:\/\/[^\s"]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.stdout!.off("data", onData);
        resolve(m[1]!);
      }
    };
    proc.stdout!.on("data", onData);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`metal-api exited with ${code}:\n${out}`));
    });
  });
  return { proc, url, output: () => out };
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

/**
 * `count` metal-api processes on one fresh pair of PostgreSQL databases. With
 * more than one they share a Mosquitto (see BENCH_MQTT_URL) under a topic
 * prefix of their own; a single replica runs as deployed alone, on the
 * in-process bus, unless `mqtt` says otherwise. They share a data directory,
 * so the second finds the admin token the first issued; they are started one
 * after the other for the same reason.
 */
export async function launchReplicas(count: number, opts: { mqtt?: boolean; env?: Record<string, string> } = {}): Promise<ReplicaSet> {
  const mqtt = opts.mqtt ?? count > 1;
  const metalDb = await createScratchDatabase("metal_bench_replicas", { from: "metal" });
  const mdDb = await createScratchDatabase("md_bench_replicas", { from: "masterdata" });
  const dataDir = await mkdtemp(join(tmpdir(), "metal-bench-replicas-"));
  const topicPrefix = mqtt ? `bench-${process.pid}-${randomBytes(4).toString("hex")}` : undefined;
  const replicas: Replica[] = [];
  let broker: PrivateBroker | undefined;
  const stop = async () => {
    await Promise.all(replicas.map((r) => stopProcess(r.proc)));
    await Promise.all([metalDb.drop(), mdDb.drop(), rm(dataDir, { recursive: true, force: true }), broker?.dispose()]);
  };
  try {
    let mqttUrl = mqtt ? BENCH_MQTT_URL : undefined;
    if (mqtt && mqttUrl === undefined) {
      broker = await startPrivateBroker();
      mqttUrl = broker.url;
    }
    for (let i = 0; i < count; i++) {
      // A fixed port: the replica's internal address (what the others dial) is its listen address.
      const port = await freePort();
      const started = await startReplica({
        METAL_LISTEN: `127.0.0.1:${port}`,
        METAL_CONSOLE_LISTEN: "127.0.0.1:0",
        METAL_DATA_DIR: dataDir,
        METAL_REPLICA_ID: `bench-${String.fromCharCode(97 + i)}`,
        DATABASE_URL: metalDb.url,
        MASTERDATA_DATABASE_URL: mdDb.url,
        METAL_DB_POOL_SIZE: DB_POOL,
        MASTERDATA_DB_POOL_SIZE: "5",
        // info: the listening line is how the bench knows a replica is up.
        LOG_LEVEL: "info",
        ...(mqttUrl && topicPrefix ? { MQTT_URL: mqttUrl, METAL_MQTT_TOPIC_PREFIX: topicPrefix } : {}),
        ...opts.env,
      });
      const connect = createTransport({ baseUrl: started.url, protocol: "connect", binary: false });
      const tokenOf = new Map<string, Transport>();
      replicas.push({
        ...started,
        client(service, token) {
          if (!tokenOf.has(token)) tokenOf.set(token, createTransport({ baseUrl: started.url, protocol: "connect", binary: false, token }));
          return createClient(service, tokenOf.get(token) ?? connect);
        },
        grpcClient: (service, token) => createClient(service, createTransport({ baseUrl: started.url, protocol: "grpc", token })),
      });
    }
    const adminToken = (await readFile(join(dataDir, "admin-token"), "utf8")).trim();
    return {
      replicas,
      adminToken,
      metalDatabaseUrl: metalDb.url,
      topicPrefix,
      mqttUrl,
      asTestServer(i) {
        const r = replicas[i]!;
        return {
          url: r.url,
          adminToken,
          client: (service: DescService, token?: string) => r.client(service, token ?? adminToken),
          grpcClient: (service: DescService, token?: string) => r.grpcClient(service, token ?? adminToken),
        } as unknown as TestServer;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** CPU time (user + system) a process has used so far, in microseconds (/proc/<pid>/stat, 100 ticks a second). */
export async function cpuMicros(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // After the command name (which may hold spaces), utime and stime are the 12th and 13th fields.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** Prints every replica's output tail (a failed bench says why). */
export function printOutputs(set: ReplicaSet | undefined): void {
  for (const [i, r] of (set?.replicas ?? []).entries()) process.stderr.write(`--- output of replica ${i} (${r.url}):\n${r.output()}\n`);
}
