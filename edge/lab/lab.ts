import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { dirname, join } from "node:path";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { sleep } from "../../client/backoff.js";
import { createFailoverTransport } from "../../client/failover-transport.js";
import { createTransport } from "../../client/transport.js";
import { MachineService as AdminMachineService, BmcCommand } from "../../gen/metal/admin/v1/machine_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import type { Machine } from "../../gen/metal/api/v1/machine_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { type App, createApp } from "../../server/app.js";
import { ensureAdminToken } from "../../server/auth/admin-token.js";
import { createTokenAuthority } from "../../server/auth/token-authority.js";
import type { Config } from "../../server/config.js";
import { loadOrCreateHostKey } from "../../server/console/host-key.js";
import type { ConsoleServer } from "../../server/console/ssh-server.js";
import { inTransaction } from "../../server/db/database.js";
import type { DbHandle } from "../../server/db/handle.js";
import { openMetalDatabase } from "../../server/db/metal-database.js";
import { type Listener, listen } from "../../server/http/listener.js";
import type { Logger } from "../../server/logger.js";
import { machineAdminRepository, machineRepository } from "../../server/repositories/machine-repository.js";
import type { WaitTiming } from "../../server/sessions/wait/session.js";
import { BmcAgent, type BmcAgentTiming } from "../bmc/agent.js";
import type { MachineProxyLimits } from "../core/machine-proxy.js";
import { MetalCore, type MetalCoreTiming } from "../core/metal-core.js";
import { type BootParams, parseBootParams } from "../hammer/boot-params.js";
import { MachineCredential } from "../hammer/credential.js";
import { type HammerTiming, MetalHammer } from "../hammer/hammer.js";
import { createPixieHandler } from "../pixie/pixie.js";
import { SimBmcs, type SimMachineBmc } from "../sim/bmc.js";
import { SimMachine } from "../sim/machine.js";
import { SimSwitch } from "../sim/switch.js";
import { type EmbeddedBroker, startEmbeddedBroker } from "./broker.js";
import { knownHostsLines, sshFingerprint, writeKnownHosts } from "./console-host-key.js";
import { labMetalctlConfigPath, writeMetalctlContexts } from "./metalctl-context.js";
import { loadMachines, type MachineIdentity, restore, type StoredMachine, saveMachines, snapshot } from "./persist.js";
import { bindingAs, checkPortsFree, type LabPort, LabStartError } from "./ports.js";
import { freePort, ReplicaProcess, replicaEnvironment } from "./replicas.js";
import { LAB, LAB_IMAGES, labImageFile, seed } from "./seed.js";
import { TcpProxy } from "./tcp-proxy.js";
import { ensureToken, type TenantSshKey, tenantSshKey } from "./tenant.js";

/**
 * Every simulated machine reaches its leaves' metal-core from 127.0.0.1,
 * where real machines have an address each: the per-address caps (one machine
 * must not take every slot) would stop the lab at 32 streams, about 16
 * machines booting at once. In the lab that one address is every machine, so
 * it may use the totals, sized for the lab's at most 250 machines (a hammer
 * holds a Wait and a call or two).
 */
const LAB_MACHINE_LIMITS: Partial<MachineProxyLimits> = {
  maxConnections: 1024,
  maxConnectionsPerAddress: 1024,
  maxStreams: 1024,
  maxStreamsPerAddress: 1024,
};

export interface LabTimings {
  wait: WaitTiming;
  core: Partial<MetalCoreTiming>;
  bmc: Partial<BmcAgentTiming>;
  hammer: Partial<HammerTiming>;
  /** A PXE boot whose pixie answer failed (control plane down) is tried again after this long, as PXE firmware does. */
  pxeRetryMs: number;
  /** How long the listener lets running calls finish on shutdown. */
  drainMs: number;
  /** How often an open SSH console re-checks its allocation and token; unset: the server's default (5 s). */
  consolePollMs?: number;
}

/** For people: phone-home within seconds, everything else at the daemons' own pace. */
export const INTERACTIVE_TIMINGS: LabTimings = {
  wait: { keepaliveMs: 5_000, leaseMs: 60_000, recheckMs: 60_000 },
  core: { lldpPollMs: 1_000, phoneHomeMs: 10_000 },
  bmc: { pollMs: 5_000, fullReportMs: 60_000 },
  hammer: {},
  pxeRetryMs: 2_000,
  drainMs: 5_000,
};

/** For tests and benchmarks: every loop in tens or hundreds of milliseconds. */
export const FAST_TIMINGS: LabTimings = {
  wait: { keepaliveMs: 100, leaseMs: 3_000, recheckMs: 1_000 },
  core: { heartbeatMs: 100, backoff: { initialMs: 50, maxMs: 400 }, lldpPollMs: 30, phoneHomeMs: 150, retryMs: 150 },
  bmc: { pollMs: 200, fullReportMs: 2_000, heartbeatMs: 200, idleMs: 2_000, backoff: { initialMs: 20, maxMs: 200 } },
  hammer: { aliveMs: 1_000, peekMs: 300, backoff: { initialMs: 20, maxMs: 300 }, crashRebootMs: 500 },
  pxeRetryMs: 100,
  drainMs: 500,
  consolePollMs: 200,
};

export interface LabOptions {
  /** The control plane's settings (listen address, data directory, databases, log level). */
  config: Config;
  log: Logger;
  /** Simulated machines (default 8). */
  machines?: number;
  /** host:port of the lab's own HTTP server (images, pixie); port 0 takes any free port. */
  labListen?: string;
  timings?: LabTimings;
  /** Where the metalctl contexts go; false writes none (tests). Default: $METAL_DATA_DIR/metalctl/config.yaml. */
  metalctlConfig?: string | false;
  /** The user's home, where their default SSH key is looked for (default $HOME). */
  home?: string;
  /** Revoke the bootstrap admin token(s) and issue a new one on this start (metal-api's --reset-admin-token). */
  resetAdminToken?: boolean;
  /** Told each step of the start, for a person waiting at the terminal. */
  progress?: (step: string) => void;
  /** Run FRR's parser on rendered configs when FRR is installed (default true). */
  frrCheck?: boolean;
  /**
   * Control-plane replicas (default 1: the control plane runs in this
   * process, as it always did). More than one: each is a metal-api process
   * on the PostgreSQL databases of `config`, the API and SSH console
   * addresses are round-robin proxies in front of them, and they share an
   * MQTT broker (config.mqttUrl, else one embedded in this process).
   */
  replicas?: number;
  /** Extra environment of every replica process (tests: short heartbeats). */
  replicaEnv?: Record<string, string>;
  /**
   * Where a daemon dials, by its name ("leaf01", "leaf02", "metal-bmc",
   * "pixie"): a base URL, or undefined for the API address (the proxy, with
   * replicas). `replicaUrls` are the replicas' own addresses; tests pin a
   * daemon to one replica with it. metal-hammer dials no control plane: its
   * calls go through the metal-cores of its leaves, so they reach the replica
   * its leaf's metal-core dials.
   */
  dial?: (daemon: string, replicaUrls: readonly string[]) => string | undefined;
}

/** What pixie answered one PXE boot of the lab (the lab's machines are its only callers). */
export interface BootAnswer {
  machine: string;
  mac: string;
  status: number;
  /** The answer as served: the kernel, initrd and command line (with the machine's credential), or the error. */
  body: string;
}

/** One simulated machine with its BMC and where it is cabled. */
export interface LabMachine {
  index: number;
  uuid: string;
  /** UUID, NIC MACs and BMC address: stored before the machine first boots, the same on every start. */
  identity: MachineIdentity;
  sim: SimMachine;
  bmc: SimMachineBmc;
  /** The front port of both leaves it is cabled to. */
  port: string;
  /** PXE boots so far (each one asks pixie and starts metal-hammer). */
  pxeBoots: number;
  /** Times the installed OS came up. */
  osBoots: number;
}

/**
 * The leaf port machine `index` is cabled to (on both leaves). swp31 and
 * swp32 are the simulated switches' spine uplinks, so machines skip them.
 */
export function labPortNumber(index: number): number {
  const n = index + 1;
  return n >= 31 ? n + 2 : n;
}

/** How many of pixie's answers the lab keeps (bootAnswers). */
const MAX_BOOT_ANSWERS = 2_000;

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const hex2 = (n: number) => n.toString(16).padStart(2, "0");

/** The identity a new machine at position `index` gets: MACs and BMC address by position, so each is unique in the lab. */
export function labMachineIdentity(index: number, uuid: string): MachineIdentity {
  const mac = (nic: number) => `0c:c4:7a:${hex2(index >> 8)}:${hex2(index & 0xff)}:${hex2(nic)}`;
  return { uuid, macs: [mac(0), mac(1)], bmc: { ip: `10.1.${index >> 8}.${(index & 0xff) + 1}`, mac: `aa:bb:cc:00:${hex2(index >> 8)}:${hex2(index & 0xff)}` } };
}

/**
 * metal-lab: the control plane plus a simulated partition in one process
 * (DESIGN §2 allows composing server and edge code only here). Two leaves of
 * one rack run the real metal-core on simulated switches, one real metal-bmc
 * drives simulated BMCs found through a lease file, and every machine that
 * PXE-boots asks pixie and runs the real metal-hammer on simulated hardware.
 */
export class Lab {
  readonly dir: string;
  readonly timings: LabTimings;
  readonly bmcs = new SimBmcs({ user: "ADMIN", password: "ADMIN" });
  /** The leaves with their metal-cores (`core` is replaced when startCore starts a new one). */
  readonly leaves = new Map<string, { sim: SimSwitch; core: MetalCore }>();
  /** What pixie answered the machines' PXE boots, oldest first (the last MAX_BOOT_ANSWERS); tests check them for secrets. */
  readonly bootAnswers: BootAnswer[] = [];
  readonly machines: LabMachine[] = [];
  app: App | undefined;
  apiUrl = "";
  labUrl = "";
  adminToken = "";
  adminTokenCreated = false;
  infraToken = "";
  projectNetwork = "";
  metalctlConfig: string | undefined;
  /** The known_hosts file written beside the metalctl contexts (with the console's host key). */
  knownHosts: string | undefined;
  /** The console's SSH host key ("ssh-ed25519 AAAA…") and its SHA256 fingerprint. */
  consoleHostKey = "";
  consoleFingerprint = "";
  /** A project editor token of the lab's project: what the tenant context carries. */
  tenantToken = "";
  /** The SSH key for allocations: the user's own default key, or one the lab generated. */
  sshKey: TenantSshKey | undefined;
  /** Free machines of an earlier start beyond --machines, removed from the control plane; allocated ones are kept running. */
  retired: string[] = [];
  bmcAgent: BmcAgent | undefined;
  /** The metal-api processes when the lab runs more than one replica (empty with one: then `app` runs here). */
  readonly replicas: ReplicaProcess[] = [];
  /** The round-robin proxies in front of the replicas' APIs and SSH consoles. */
  apiProxy: TcpProxy | undefined;
  consoleProxy: TcpProxy | undefined;
  /** The broker the replicas share: host:port, never the URL (it may carry a password). */
  brokerAddress: string | undefined;
  private broker: EmbeddedBroker | undefined;
  /** The lab's own connection to the metal database when the control plane runs in other processes. */
  private ownDb: Awaited<ReturnType<typeof openMetalDatabase>> | undefined;
  private readonly killReplicas = () => {
    for (const r of this.replicas) r.killNow();
  };
  /** While set, image downloads wait for it to settle: a test holds an installation half-way with it. */
  imageGate: Promise<void> | undefined;
  private listener: Listener | undefined;
  private listenAddress: string;
  private consoleServer: ConsoleServer | undefined;
  /** host:port of the SSH console (metal-console), for `metalctl machine console`. */
  consoleAddress: string;
  private http: Server | undefined;
  private pixie: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  private readonly images = new Map<string, Buffer | string>();
  private readonly transports = new Map<string, Transport>();
  private stored: StoredMachine[] = [];
  private saving: Promise<void> = Promise.resolve();
  private bmcStop = new AbortController();
  private bmcRun: Promise<void> | undefined;
  private stopped = false;
  /** Leaves whose metal-core stopCore stopped (and startCore has not started again). */
  private readonly stoppedCores = new Set<string>();

  private constructor(readonly opts: LabOptions) {
    this.dir = join(opts.config.dataDir, "lab");
    this.timings = opts.timings ?? INTERACTIVE_TIMINGS;
    this.listenAddress = opts.config.listen;
    this.consoleAddress = opts.config.consoleListen;
    for (const id of Object.keys(LAB_IMAGES)) {
      const body = labImageFile(id);
      this.images.set(`/images/${id}.img`, body);
      this.images.set(`/images/${id}.img.sha256`, `${sha256(body)}  ${id}.img\n`);
    }
  }

  static async start(opts: LabOptions): Promise<Lab> {
    const replicas = opts.replicas ?? 1;
    if (!Number.isInteger(replicas) || replicas < 1) throw new LabStartError(`replicas: ${replicas} is not a number of replicas (1 or more)`);
    if (replicas > 1 && (!opts.config.databaseUrl || !opts.config.masterdataDatabaseUrl)) {
      throw new LabStartError(`--replicas ${replicas} needs PostgreSQL for both databases (DATABASE_URL and MASTERDATA_DATABASE_URL): several metal-api processes cannot share the embedded ones`);
    }
    const lab = new Lab(opts);
    try {
      await lab.boot();
    } catch (err) {
      await lab.stop().catch(() => {});
      throw err;
    }
    return lab;
  }

  private get log(): Logger {
    return this.opts.log;
  }

  /** The step under way and when it began (wall and CPU), for the debug line that says what each step cost. */
  private current: { what: string; at: number; cpu: NodeJS.CpuUsage } | undefined;

  private step(what: string | undefined): void {
    if (this.current) {
      const cpu = process.cpuUsage(this.current.cpu);
      this.log.debug({ step: this.current.what, ms: Math.round(performance.now() - this.current.at), cpuMs: Math.round((cpu.user + cpu.system) / 1000) }, "lab start: step done");
    }
    this.current = what === undefined ? undefined : { what, at: performance.now(), cpu: process.cpuUsage() };
    if (what !== undefined) this.opts.progress?.(what);
  }

  /** Every address the lab listens on, with the setting that moves it. */
  get ports(): { lab: LabPort; api: LabPort; console: LabPort } {
    return {
      lab: { what: "the lab's image and pixie server", address: this.opts.labListen ?? "127.0.0.1:8081", setting: "--lab-listen / METAL_LAB_LISTEN" },
      api: { what: "the API", address: this.listenAddress, setting: "--listen / METAL_LISTEN" },
      console: { what: "the SSH console", address: this.consoleAddress, setting: "--console-listen / METAL_CONSOLE_LISTEN" },
    };
  }

  private async boot(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const ports = this.ports;
    await checkPortsFree([ports.api, ports.console, ports.lab]);
    await bindingAs(ports.lab, () => this.startHttp(ports.lab.address));
    this.step(`opening the control plane's databases (${this.opts.config.databaseUrl ? "PostgreSQL" : `embedded, in ${this.opts.config.dataDir}`}) and applying migrations`);
    await this.startControlPlane();
    this.step("seeding the partition, its networks, a tenant and a project");
    const admin = createTransport({ baseUrl: this.apiUrl, protocol: "connect", binary: true, token: this.adminToken });
    const seeded = await seed({
      transport: admin,
      labUrl: this.labUrl,
      apiUrl: this.apiUrl,
      infraTokenFile: join(this.dir, "infra-token"),
      verify: (token) => this.tokenWorks(token),
    });
    this.infraToken = seeded.infraToken;
    this.projectNetwork = seeded.projectNetwork;
    this.tenantToken = await ensureToken({
      transport: admin,
      file: join(this.dir, "tenant-token"),
      subject: "lab-user",
      description: `an editor of project ${LAB.project}: what metalctl's lab-project context acts as`,
      roles: { projectRoles: { [LAB.project]: ProjectRole.EDITOR } },
      verify: (token) => this.tokenWorks(token),
    });
    this.pixie = createPixieHandler({
      transport: this.transport("pixie"),
      partition: LAB.partition,
      log: (msg, fields) => this.log.debug({ component: "pixie", ...fields }, msg),
    });
    if (this.opts.metalctlConfig !== false) await this.writeContexts();
    this.step("starting the simulated partition: 2 leaves with metal-core, metal-bmc, the machines");
    await this.buildPartition(admin);
    await this.leavesServing();
    this.step(`powering on ${this.machines.length} machines (they PXE-boot, run metal-hammer, register and wait)`);
    await this.powerOnAll(admin);
    this.step(undefined);
  }

  /** Asked over the API, not the authority: a revoked token must count as broken too. */
  private tokenWorks(token: string): Promise<boolean> {
    return createClient(UserService, createTransport({ baseUrl: this.apiUrl, protocol: "connect", binary: true, token }))
      .get({})
      .then(
        () => true,
        () => false,
      );
  }

  /**
   * The metalctl contexts: "lab" is the operator (machine list shows every
   * machine), "lab-project" a member (editor) of the lab's project, as a
   * tenant is. Beside them a known_hosts file with the console's host key.
   */
  private async writeContexts(): Promise<void> {
    const path = this.opts.metalctlConfig || labMetalctlConfigPath(this.opts.config.dataDir);
    const dir = dirname(path);
    this.knownHosts = join(dir, "known_hosts");
    await writeKnownHosts(this.knownHosts, knownHostsLines(this.consoleAddress, this.consoleHostKey));
    this.sshKey = await tenantSshKey(this.opts.home ?? process.env.HOME, dir);
    const common = { url: this.apiUrl, console: this.consoleAddress, knownHosts: this.knownHosts, ...(this.sshKey.generated ? { sshKey: this.sshKey.generated } : {}) };
    await writeMetalctlContexts(path, "lab", {
      lab: { ...common, token: this.adminToken },
      "lab-project": { ...common, token: this.tenantToken, project: LAB.project },
    });
    this.metalctlConfig = path;
  }

  /** The lab's own web server: the OS images with their checksums, the discovery kernel, and pixie. */
  private async startHttp(address: string): Promise<void> {
    this.http = createServer((req, res) => {
      const path = new URL(req.url ?? "/", "http://lab").pathname;
      if (path.startsWith("/v1/boot/")) {
        if (!this.pixie) return void res.writeHead(503, { "retry-after": "1" }).end();
        return this.pixie(req, res);
      }
      const body = this.images.get(path) ?? (path.startsWith("/pxe/") ? `simulated ${path.slice(5)}\n` : undefined);
      if (body === undefined || req.method !== "GET") return void res.writeHead(404).end();
      const send = () => void res.writeHead(200, { "content-type": "application/octet-stream", "content-length": Buffer.byteLength(body) }).end(body);
      if (path.startsWith("/images/") && this.imageGate) void this.imageGate.then(send, send);
      else send();
    });
    const sep = address.lastIndexOf(":");
    const host = address.slice(0, sep);
    await new Promise<void>((resolve, reject) => this.http!.once("error", reject).listen(Number(address.slice(sep + 1)), host, () => resolve()));
    const port = (this.http.address() as { port: number }).port;
    this.labUrl = `http://${host}:${port}`;
  }

  /** How many control-plane replicas the lab runs. */
  get replicaCount(): number {
    return this.opts.replicas ?? 1;
  }

  /** The metal database: the in-process control plane's, or the lab's own connection when the replicas run apart. */
  get db(): DbHandle {
    const db = this.app?.db ?? this.ownDb?.db;
    if (!db) throw new Error("the control plane is not running");
    return db;
  }

  /** Starts (or starts again, on the same address and databases) the control plane. */
  async startControlPlane(): Promise<void> {
    if (this.replicaCount > 1) return this.startReplicas();
    if (this.app) return;
    const config: Config = { ...this.opts.config, listen: this.listenAddress };
    if (config.tlsCert) this.log.warn("metal-lab serves plain h2c: the lab's daemons dial it without TLS, so the TLS settings are ignored");
    const app = await createApp(config, this.log, { waitTiming: this.timings.wait, consolePollMs: this.timings.consolePollMs });
    try {
      // A reset happens once, on the lab's start, not again when a test restarts the control plane alone.
      const admin = await ensureAdminToken(app.db, app.authority, config.dataDir, { reset: this.opts.resetAdminToken === true && !this.adminToken });
      // The lab seeds and runs its partition with this token: without it there is nothing it can do.
      if (admin.problem) throw new LabStartError(`${admin.problem} (metal-lab takes --reset-admin-token too)`);
      this.adminToken = admin.token;
      this.adminTokenCreated ||= admin.created;
      const ports = this.ports;
      this.listener = await bindingAs(ports.api, () => listen(app.handler, this.listenAddress));
      this.consoleServer = await bindingAs(ports.console, () => app.startConsole(this.consoleAddress));
    } catch (err) {
      await this.listener?.close(0);
      this.listener = undefined;
      await app.close();
      throw err;
    }
    this.consoleAddress = `${this.consoleServer.host}:${this.consoleServer.port}`;
    this.consoleHostKey = this.consoleServer.hostKey;
    this.consoleFingerprint = sshFingerprint(this.consoleHostKey);
    this.app = app;
    this.apiUrl = this.listener.url;
    // Port 0 picked a port: a restart must come back on the same one, the daemons dial it.
    this.listenAddress = new URL(this.apiUrl).host;
  }

  /**
   * Several replicas: the lab issues the admin token itself (as metal-api
   * would; the replicas then find it in the shared data directory), starts
   * the broker unless MQTT_URL names one, the replica processes on free
   * ports, and the round-robin proxies on the lab's API and console
   * addresses. Started again (after stopControlPlane), only the replicas
   * that are not running start.
   */
  private async startReplicas(): Promise<void> {
    if (this.replicas.length > 0) {
      await Promise.all(this.replicas.filter((r) => !r.running).map((r) => r.start()));
      return;
    }
    const config = this.opts.config;
    this.ownDb = await openMetalDatabase({ url: config.databaseUrl, dataDir: undefined, poolSize: 2 });
    const db = this.ownDb.db;
    const authority = await createTokenAuthority(db);
    const admin = await ensureAdminToken(db, authority, config.dataDir, { reset: this.opts.resetAdminToken === true });
    if (admin.problem) throw new LabStartError(`${admin.problem} (metal-lab takes --reset-admin-token too)`);
    this.adminToken = admin.token;
    this.adminTokenCreated ||= admin.created;
    // Made here, before the replicas race to make it: every one of them presents this key.
    this.consoleHostKey = (await loadOrCreateHostKey(db)).publicKey;
    this.consoleFingerprint = sshFingerprint(this.consoleHostKey);
    if (config.tlsCert) this.log.warn("metal-lab serves plain h2c: the lab's daemons dial it without TLS, so the TLS settings are ignored");
    let mqttUrl = config.mqttUrl;
    if (mqttUrl) {
      this.brokerAddress = new URL(mqttUrl).host;
    } else {
      this.broker = await startEmbeddedBroker();
      mqttUrl = this.broker.url;
      this.brokerAddress = this.broker.address;
    }
    const hostOf = (address: string) => address.slice(0, address.lastIndexOf(":"));
    const apiHost = hostOf(this.listenAddress);
    const consoleHost = hostOf(this.consoleAddress);
    const env: NodeJS.ProcessEnv = { ...process.env, ...replicaEnvironment(config), MQTT_URL: mqttUrl, ...this.opts.replicaEnv };
    const taken = new Set<number>();
    for (let i = 1; i <= this.replicaCount; i++) {
      this.replicas.push(
        new ReplicaProcess({
          id: `lab-api-${i}`,
          address: `${apiHost}:${await freePort(apiHost.replace(/^\[(.*)\]$/, "$1"), taken)}`,
          consoleAddress: `${consoleHost}:${await freePort(consoleHost.replace(/^\[(.*)\]$/, "$1"), taken)}`,
          env,
          log: this.log,
        }),
      );
    }
    // A lab that dies without its stop (an uncaught error) takes its replicas along.
    process.once("exit", this.killReplicas);
    await Promise.all(this.replicas.map((r) => r.start()));
    const ports = this.ports;
    this.apiProxy = await bindingAs(ports.api, () =>
      TcpProxy.listen(
        this.listenAddress,
        this.replicas.map((r) => r.address),
      ),
    );
    this.consoleProxy = await bindingAs(ports.console, () =>
      TcpProxy.listen(
        this.consoleAddress,
        this.replicas.map((r) => r.consoleAddress),
      ),
    );
    this.apiUrl = `http://${this.apiProxy.address}`;
    this.listenAddress = this.apiProxy.address;
    this.consoleAddress = this.consoleProxy.address;
  }

  /** Stops the control plane only (streams cut, listener closed, databases closed); the partition keeps running and reconnecting. */
  async stopControlPlane(): Promise<void> {
    if (this.replicas.length > 0) {
      await Promise.all(this.replicas.map((r) => r.stop(this.timings.drainMs + 5_000)));
      return;
    }
    const app = this.app;
    if (!app) return;
    this.app = undefined;
    app.endStreams();
    await this.consoleServer?.close();
    this.consoleServer = undefined;
    await this.listener?.close(this.timings.drainMs);
    this.listener = undefined;
    await app.close();
  }

  /** Where the daemon `name` dials: the API address unless the `dial` option says otherwise. */
  private dialUrl(name: string): string {
    return (
      this.opts.dial?.(
        name,
        this.replicas.map((r) => r.url),
      ) ?? this.apiUrl
    );
  }

  /** An infra-token transport of its own (its own HTTP/2 connection), by name. */
  private transport(name: string): Transport {
    let t = this.transports.get(name);
    if (!t) {
      t = createTransport({ baseUrl: this.dialUrl(name), token: this.infraToken });
      this.transports.set(name, t);
    }
    return t;
  }

  private async buildPartition(admin: Transport): Promise<void> {
    // Durably on disk before any machine exists, let alone boots: see loadMachines.
    this.stored = await loadMachines(join(this.dir, "machines.json"), this.opts.machines ?? 8, labMachineIdentity);
    const count = await this.retireExtraMachines(admin, this.opts.machines ?? 8);
    // One rack: a switch registers at most 256 ports, which caps the lab at 250 machines (main.ts checks).
    const frontPorts = Math.max(8, labPortNumber(count - 1));
    for (const [i, id] of ["leaf01", "leaf02"].entries()) {
      const sim = new SimSwitch({ id, root: join(this.dir, "switches", id), frontPorts, managementIp: `192.168.0.${11 + i}`, frrCheck: this.opts.frrCheck ?? true });
      this.leaves.set(id, { sim, core: this.newCore(id, sim, "127.0.0.1:0") });
    }
    for (let i = 0; i < count; i++) this.machines.push(this.makeMachine(i, this.stored[i]!));
    const leaseFile = join(this.dir, "dhcpd.leases");
    await this.bmcs.writeLeases(leaseFile);
    this.bmcs.onCommand((bmc, command) => {
      const m = this.machines.find((x) => x.uuid === bmc.uuid);
      if (m) this.onBmcCommand(m, command);
    });
    for (const { core } of this.leaves.values()) core.start();
    this.bmcAgent = new BmcAgent({
      transport: this.transport("metal-bmc"),
      partition: LAB.partition,
      agent: "lab-bmc",
      version: "lab",
      leaseFile,
      stateDir: join(this.dir, "metal-bmc"),
      adapter: this.bmcs,
      credentials: { user: "ADMIN", password: "ADMIN", interface: "lanplus", port: 623 },
      timing: this.timings.bmc,
      log: (msg, fields) => this.log.debug({ component: "metal-bmc", ...fields }, msg),
    });
    this.bmcRun = this.bmcAgent.run(this.bmcStop.signal).catch((err: unknown) => this.log.error({ err }, "metal-bmc stopped"));
  }

  /** The metal-core of leaf `id` (leaf01: index 0), serving its machines on `machineListen`. */
  private newCore(id: string, sim: SimSwitch, machineListen: string): MetalCore {
    const i = id === "leaf01" ? 0 : 1;
    return new MetalCore({
      url: this.dialUrl(id),
      token: this.infraToken,
      partition: LAB.partition,
      rack: LAB.rack,
      os: sim,
      settings: { asn: 4200000011 + i, loopback: `10.0.0.${11 + i}` },
      machineListen,
      machineLimits: LAB_MACHINE_LIMITS,
      timing: this.timings.core,
      log: (level, msg, fields) => this.log[level === "info" ? "debug" : level]({ component: "metal-core", switch: id, ...fields }, msg),
    });
  }

  /**
   * Waits (bounded) until every leaf's metal-core has registered its switch,
   * machine endpoint included, and synced once. A machine's boot answer names
   * the leaves the control plane knows at that moment: one that PXE-boots
   * while only one leaf has registered has no other to fail over to.
   */
  private async leavesServing(timeoutMs = 60_000): Promise<void> {
    const synced = [...this.leaves.values()].map(({ core }) =>
      core.lastSync
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            const off = core.onSync(() => {
              off();
              resolve();
            });
          }),
    );
    const abort = new AbortController();
    const gaveUp = sleep(timeoutMs, abort.signal).then(() => !abort.signal.aborted);
    const late = await Promise.race([Promise.all(synced).then(() => false), gaveUp]);
    abort.abort();
    if (late) this.log.warn({ timeoutMs }, "a leaf's metal-core has not synced yet; machines booting now may be told of one leaf only");
  }

  /** Stops leaf `id`'s metal-core as a crash of the daemon would: its session ends, its machine endpoint closes, its machines' calls are cut. */
  async stopCore(id: string): Promise<void> {
    const leaf = this.leaves.get(id);
    if (!leaf) throw new Error(`no leaf ${id}`);
    if (this.stoppedCores.has(id)) return;
    this.stoppedCores.add(id);
    await leaf.core.stop();
  }

  /**
   * Starts leaf `id`'s metal-core again (a new one, as a restarted daemon), on
   * the machine endpoint the stopped one served: the machines booted meanwhile
   * have that address on their command lines.
   */
  async startCore(id: string): Promise<void> {
    const leaf = this.leaves.get(id);
    if (!leaf) throw new Error(`no leaf ${id}`);
    if (!this.stoppedCores.has(id) || this.stopped) return;
    const endpoint = leaf.core.machineEndpoint;
    if (!endpoint) throw new Error(`leaf ${id}'s metal-core never served machines`);
    leaf.core = this.newCore(id, leaf.sim, endpoint);
    this.stoppedCores.delete(id);
    leaf.core.start();
  }

  /**
   * Machines an earlier start simulated beyond this start's --machines: a
   * free one is removed from the control plane (its record would keep saying
   * Waiting while nothing answers for it, and allocations of it would hang);
   * it keeps its identity in machines.json and registers again when a later
   * start has room for it. An allocated one is never pulled from under its
   * tenant: the lab keeps simulating it (and every machine before it, ports
   * being by position). Returns how many machines to simulate.
   */
  private async retireExtraMachines(transport: Transport, wanted: number): Promise<number> {
    const records = await this.recordsOf(transport);
    let count = wanted;
    const free: string[] = [];
    for (const [i, m] of this.stored.entries()) {
      if (i < wanted) continue;
      const known = records.get(m.uuid);
      if (known?.allocation) count = i + 1;
      else if (known) free.push(m.uuid);
    }
    if (count > wanted) this.log.warn({ machines: count, wanted }, `simulating ${count} machines instead of ${wanted}: machine ${count} is allocated (free it to run fewer)`);
    const db = this.db;
    for (const id of free.filter((id) => this.stored.findIndex((m) => m.uuid === id) >= count)) {
      await inTransaction(db, async (tx) => {
        const m = await machineRepository.lock(tx, id).catch((err: unknown) => {
          if (ConnectError.from(err).code === Code.NotFound) return undefined;
          throw err;
        });
        // Gone meanwhile, or allocated meanwhile (a tenant was quicker than this start): then it stays, simply not simulated until a start with room.
        if (!m || m.allocation) return;
        await machineAdminRepository.delete(tx, id);
        this.retired.push(id);
      });
    }
    if (this.retired.length > 0)
      this.log.info({ machines: this.retired }, `removed ${this.retired.length} free machines beyond --machines ${wanted} from the control plane; they come back when a start has room for them`);
    return count;
  }

  private makeMachine(index: number, stored: StoredMachine): LabMachine {
    const port = `swp${labPortNumber(index)}`;
    const derived = labMachineIdentity(index, stored.uuid);
    const identity: MachineIdentity = { uuid: stored.uuid, macs: stored.macs ?? derived.macs, bmc: stored.bmc ?? derived.bmc };
    const lm = { index, uuid: stored.uuid, identity, port, pxeBoots: 0, osBoots: 0 } as LabMachine;
    lm.sim = new SimMachine(
      {
        uuid: stored.uuid,
        nics: identity.macs.map((mac, i) => ({ name: `eth${i}`, mac, neighbors: [{ hostname: i === 0 ? "leaf01" : "leaf02", port }] })),
      },
      {
        pxeBoot: (_m, signal) => void this.pxeBoot(lm, signal),
        osBooted: () => {
          lm.osBoots++;
          // The installed OS runs an LLDP daemon: its frames are what metal-core turns into Phoned Home.
          this.lldp(lm, `provisioned since ${new Date().toISOString()}`);
          this.save();
        },
      },
    );
    restore(lm.sim, stored);
    lm.bmc = this.bmcs.add({ uuid: stored.uuid, ip: identity.bmc.ip, mac: identity.bmc.mac, power: "OFF", bootDevice: stored.bootOrder }, { stream: lm.sim.console, log: () => lm.sim.consoleLog });
    return lm;
  }

  /**
   * A lab start powers every machine on: a new one by its power button (PXE),
   * one the control plane knows from an earlier start through a BMC reset, so
   * that it records a Planned Reboot and the boot that follows (PXE for a free
   * machine, the installed OS for an allocated one) is expected rather than
   * flagged as a crash.
   */
  private async powerOnAll(transport: Transport): Promise<void> {
    const admin = createClient(AdminMachineService, transport);
    const records = await this.recordsOf(transport);
    await Promise.all(
      this.machines.map(async (m) => {
        // Known: it booted under this control plane before (a record made by metal-bmc's first BMC report alone, which can
        // arrive before this, is not; such a machine never ran and a reset would record a reboot that never was planned).
        const record = records.get(m.uuid);
        const known = (record?.events?.log.length ?? 0) > 0 ? record?.bmc?.address : undefined;
        if (known) {
          const refused = await admin.bMCCommand({ id: m.uuid, command: BmcCommand.RESET }).then(
            () => undefined,
            (err: unknown) => {
              // Another record claims the machine's BMC address (left over by a lab of an older version): the control plane
              // sends it no commands until an operator deletes the stale record, but the lab's machine still boots.
              if (err instanceof ConnectError && err.code === Code.FailedPrecondition) return err.rawMessage;
              throw err;
            },
          );
          if (!refused) return;
          this.log.warn({ machine: m.uuid, reason: refused }, "the control plane refuses BMC commands for this machine; powering it on by its button");
        }
        m.bmc.power = "ON";
        m.sim.powerOn(m.sim.bootOrder);
      }),
    );
  }

  /**
   * The control plane's records of the lab partition's machines, by id. Listed,
   * not read one by one: a Get hands an operator the BMC login and is audited
   * as a credential read, which the lab has no use for.
   */
  private async recordsOf(transport: Transport): Promise<Map<string, Machine>> {
    const admin = createClient(AdminMachineService, transport);
    const out = new Map<string, Machine>();
    let pageToken = "";
    do {
      const page = await admin.list({ partition: LAB.partition, paging: { limit: 1000, pageToken } });
      for (const m of page.machines) out.set(m.id, m);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return out;
  }

  /** What the BMC's command does to the machine behind it. */
  private onBmcCommand(m: LabMachine, command: string): void {
    switch (command) {
      case "POWER_ON":
        m.sim.powerOn();
        break;
      case "POWER_OFF":
        this.lldp(m, undefined);
        m.sim.powerOff();
        break;
      case "RESET":
      case "CYCLE":
        this.lldp(m, undefined);
        m.sim.reset();
        break;
      case "BOOT_FROM_PXE":
        m.sim.setBootOrder("pxe");
        this.save();
        break;
      case "BOOT_FROM_DISK":
        m.sim.setBootOrder("disk");
        this.save();
        break;
    }
  }

  /** What the machine sends by LLDP on both its cables; undefined: nothing (powered off, rebooting). */
  private lldp(m: LabMachine, description: string | undefined): void {
    for (const nic of m.sim.nics) {
      for (const n of nic.neighbors) {
        const leaf = this.leaves.get(n.hostname)?.sim;
        if (!leaf) continue;
        if (description === undefined) leaf.removeNeighbour(n.port);
        else leaf.setNeighbour(n.port, m.uuid, description);
      }
    }
  }

  /**
   * PXE: the firmware asks pixie with its MAC and SMBIOS UUID (pixie records
   * PXE Booting), then the discovery image runs metal-hammer until the next
   * reset, with what the kernel command line gave it: its machine credential
   * and its leaves' metal-cores, which carry all its calls. The lab never
   * hands a hammer the infra token.
   */
  private async pxeBoot(m: LabMachine, signal: AbortSignal): Promise<void> {
    m.pxeBoots++;
    this.lldp(m, `metal-hammer waiting since ${new Date().toISOString()} for installation`);
    const mac = m.sim.nics[0]!.mac;
    let params: BootParams | undefined;
    while (!signal.aborted) {
      try {
        const res = await fetch(`${this.labUrl}/v1/boot/${mac}?uuid=${m.uuid}`, { signal });
        const body = await res.text();
        this.recordBootAnswer({ machine: m.uuid, mac, status: res.status, body });
        if (res.ok) {
          // An answer without metal-cores (none registered yet; pixie says 503 then) does not parse: PXE tries again, as after a failed answer.
          params = parseBootParams((JSON.parse(body) as { cmdline: string }).cmdline);
          break;
        }
        this.log.debug({ machine: m.uuid, status: res.status }, "PXE: no boot answer yet");
      } catch (err) {
        // Powered off or reset meanwhile, or the lab's server is going down; or an answer the hammer could not read.
        if (!signal.aborted) this.log.debug({ machine: m.uuid, err: String(err) }, "PXE: no usable boot answer");
      }
      await sleep(this.timings.pxeRetryMs, signal);
    }
    if (!params || signal.aborted || this.stopped) return;
    const credential = new MachineCredential({ machineId: params.machineId, partition: params.partition, secret: params.credential, expiresAt: params.credentialExpiresAt });
    const hammer = new MetalHammer({
      transport: createFailoverTransport({
        endpoints: params.cores.map((c) => `http://${c}`),
        token: () => credential.secret,
        log: (msg, fields) => this.log.debug({ component: "metal-hammer", machine: m.uuid, ...fields }, msg),
      }),
      credential,
      partition: LAB.partition,
      hardware: m.sim,
      version: "lab",
      timing: this.timings.hammer,
      log: (msg, fields) => this.log.debug({ component: "metal-hammer", machine: m.uuid, ...fields }, msg),
    });
    const outcome = await hammer.run(signal);
    this.log.debug({ machine: m.uuid, outcome }, "metal-hammer run ended");
  }

  /** Keeps the latest answers only: a lab that runs for days PXE-boots its machines again and again. */
  private recordBootAnswer(answer: BootAnswer): void {
    this.bootAnswers.push(answer);
    if (this.bootAnswers.length > MAX_BOOT_ANSWERS) this.bootAnswers.splice(0, this.bootAnswers.length - MAX_BOOT_ANSWERS);
  }

  /** Writes the machines' disks and boot order; writes are chained so that an older state never lands last. */
  save(): Promise<void> {
    const machines = [...this.machines.map((m) => snapshot(m.sim, m.identity)), ...this.stored.slice(this.machines.length)];
    this.saving = this.saving.then(() => saveMachines(join(this.dir, "machines.json"), machines)).catch((err: unknown) => this.log.warn({ err }, "saving the simulated machines failed"));
    return this.saving;
  }

  /** Stops everything: machines, daemons, the lab's web server, the control plane and its databases. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.machines.length > 0) await this.save();
    for (const m of this.machines) m.sim.powerOff();
    this.bmcStop.abort();
    await this.bmcRun;
    await Promise.all([...this.leaves].filter(([id]) => !this.stoppedCores.has(id)).map(([, l]) => l.core.stop()));
    if (this.http) {
      const http = this.http;
      const closed = new Promise<void>((r) => http.close(() => r()));
      http.closeAllConnections();
      await closed;
    }
    await this.stopControlPlane();
    await Promise.all([this.apiProxy?.close(), this.consoleProxy?.close(), this.broker?.close(), this.ownDb?.close()]);
    process.off("exit", this.killReplicas);
    await Promise.all(this.machines.map((m) => m.sim.dispose()));
  }
}
