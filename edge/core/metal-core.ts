import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { AsyncQueue } from "../../client/async-queue.js";
import { type BackoffPolicy, backoffPolicy, retryLoop, sleep } from "../../client/backoff.js";
import { formatHostPort, parseHostPort } from "../../client/host-port.js";
import { createTransport } from "../../client/transport.js";
import { ProvisioningEventType } from "../../gen/metal/api/v1/machine_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { SwitchPortAdminState, SwitchPortOperState, SwitchService, type SwitchServiceSessionRequestSchema } from "../../gen/metal/infra/v1/switch_pb.js";
import { printable } from "../common/text.js";
import { type ApplyResult, ConfigApplier } from "./apply.js";
import { DEFAULT_SETTINGS, type DesiredConfig, fromProto, type LocalSettings } from "./config.js";
import { type MachineProxy, type MachineProxyLimits, startMachineProxy } from "./machine-proxy.js";
import type { SwitchFacts, SwitchOs } from "./switch-os.js";

type SessionRequest = MessageInitShape<typeof SwitchServiceSessionRequestSchema>;

export interface MetalCoreTiming {
  /** Heartbeats on the session; a server silent for three of them counts as gone. */
  heartbeatMs: number;
  /** Reconnect backoff: doubles from the first to the maximum, with jitter; reset by a working session. */
  backoff: BackoffPolicy;
  /** How often LLDP is read, and how often phone-home events are sent as one batch. */
  lldpPollMs: number;
  phoneHomeMs: number;
  /** A failed sync is tried again after this long (the server only resends on a change). */
  retryMs: number;
}

export const DEFAULT_TIMING: MetalCoreTiming = { heartbeatMs: 10_000, backoff: backoffPolicy(), lldpPollMs: 5_000, phoneHomeMs: 60_000, retryMs: 10_000 };

/** Timing as callers give it: any field, and any field of the backoff. */
export type MetalCoreTimingInput = Partial<Omit<MetalCoreTiming, "backoff">> & { backoff?: Partial<BackoffPolicy> };

export interface MetalCoreOptions {
  /** The control plane's address, e.g. http://127.0.0.1:8080 (the session needs HTTP/2: h2c or TLS). */
  url: string;
  /** An infra token of the partition. */
  token: string;
  partition: string;
  rack: string;
  os: SwitchOs;
  settings?: Partial<Omit<LocalSettings, "hostname">>;
  timing?: MetalCoreTimingInput;
  /** Instead of dialling `url` (tests, in-process). */
  transport?: Transport;
  /**
   * host:port of the machine endpoint (see machine-proxy.ts): metal-hammer on the
   * machines cabled to this switch calls the control plane through it. Unset: none.
   * It is started before the first registration, which advertises it.
   */
  machineListen?: string;
  /** Bounds of the machine endpoint (defaults: DEFAULT_MACHINE_PROXY_LIMITS, for machines with an address each). */
  machineLimits?: Partial<MachineProxyLimits>;
  /**
   * The machine endpoint as the machines reach it, advertised in the switch's
   * registration. Default: the address it listens on, or, when that is every
   * interface, the switch's address on the PXE VLAN (`settings.pxeCidr`).
   */
  machineEndpoint?: string;
  log?: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
}

export interface SyncStatus extends ApplyResult {
  at: Date;
}

/**
 * metal-core: registers its switch, holds the session to the control plane,
 * applies each desired config it receives, reports every sync, and turns LLDP
 * sightings of installed machines into Phoned Home events. Level-triggered:
 * it only ever applies the newest config it has, and after a reconnect the
 * server sends the full state again, so nothing depends on a message that a
 * broken stream lost.
 */
export class MetalCore {
  private readonly timing: MetalCoreTiming;
  private readonly switches: Client<typeof SwitchService>;
  private readonly events: Client<typeof EventService>;
  private readonly log: NonNullable<MetalCoreOptions["log"]>;
  private readonly stopping = new AbortController();
  private session: { abort: AbortController; requests: AsyncQueue<SessionRequest> } | undefined;
  private facts: SwitchFacts | undefined;
  private applier: ConfigApplier | undefined;
  private settings: LocalSettings | undefined;
  private desired: DesiredConfig | undefined;
  private applying: Promise<void> | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private readonly phoned = new Set<string>();
  private readonly loops: Promise<void>[] = [];
  private readonly listeners = new Set<(s: SyncStatus) => void>();
  private machineProxy: MachineProxy | undefined;
  private advertised: string | undefined;

  /** The last sync, successful or not. */
  lastSync: SyncStatus | undefined;
  /** The generation the switch runs (the last one applied without error). */
  appliedGeneration = -1;
  /** How many sessions were opened; tests watch reconnects with it. */
  sessions = 0;

  constructor(private readonly opts: MetalCoreOptions) {
    this.timing = { ...DEFAULT_TIMING, ...opts.timing, backoff: backoffPolicy(opts.timing?.backoff) };
    this.log = opts.log ?? (() => {});
    const transport = opts.transport ?? createTransport({ baseUrl: opts.url, token: opts.token });
    this.switches = createClient(SwitchService, transport);
    this.events = createClient(EventService, transport);
  }

  get connected(): boolean {
    return this.session !== undefined;
  }

  /** The machine endpoint this metal-core advertises (once it listens; still known after stop), undefined without machineListen. */
  get machineEndpoint(): string | undefined {
    return this.advertised;
  }

  start(): void {
    this.loops.push(this.sessionLoop(), this.phoneHomeLoop());
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    clearTimeout(this.retry);
    this.session?.abort.abort();
    await Promise.allSettled(this.loops);
    // Every machine connection is cut at once: the hammers' streams end and they turn to their other leaf.
    await this.machineProxy?.close();
    await this.applying;
  }

  /** Cuts the current session as a broken network would; metal-core reconnects by itself. */
  interruptSession(): void {
    this.session?.abort.abort(new Error("interrupted"));
  }

  /** Calls `fn` after every sync; returns the unsubscribe function. */
  onSync(fn: (s: SyncStatus) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private async sessionLoop(): Promise<void> {
    await retryLoop(
      async ({ healthy }) => {
        await this.serveMachines();
        await this.register();
        await this.runSession(healthy);
      },
      { policy: this.timing.backoff, signal: this.stopping.signal, onRetry: ({ err }) => err !== undefined && this.log("warn", "switch session failed", { error: message(err) }) },
    );
  }

  /** Starts the machine endpoint once, before the first registration (which advertises it); a failed start is retried with the session. */
  private async serveMachines(): Promise<void> {
    if (this.opts.machineListen === undefined || this.machineProxy) return;
    const proxy = await startMachineProxy({ upstreamUrl: this.opts.url, listen: this.opts.machineListen, log: this.log, limits: this.opts.machineLimits });
    if (this.stopping.signal.aborted) return void (await proxy.close());
    this.machineProxy = proxy;
    this.advertised = this.opts.machineEndpoint ?? reachableEndpoint(proxy.endpoint, this.opts.settings?.pxeCidr ?? DEFAULT_SETTINGS.pxeCidr);
  }

  /** Registration is repeated on every reconnect: ports may have changed, and it is idempotent. */
  private async register(): Promise<void> {
    const facts = await this.opts.os.facts();
    this.facts = facts;
    if (!this.settings) {
      this.settings = { hostname: facts.id, ...DEFAULT_SETTINGS, ...this.opts.settings };
      this.applier = new ConfigApplier(this.opts.os, this.settings);
    }
    const uplinks = new Set(this.settings.uplinks);
    await this.switches.register(
      {
        partition: this.opts.partition,
        id: facts.id,
        rack: this.opts.rack,
        osVendor: facts.osVendor,
        osVersion: facts.osVersion,
        managementIp: facts.managementIp,
        machineEndpoint: this.advertised ?? "",
        nics: facts.ports.filter((p) => !uplinks.has(p.name)).map((p) => ({ name: p.name, identifier: p.identifier })),
      },
      { signal: this.stopping.signal },
    );
  }

  /** One session, until it breaks; `healthy` once the server sent anything (the backoff starts over then). */
  private async runSession(healthy: () => void): Promise<void> {
    const abort = new AbortController();
    const stop = () => abort.abort();
    this.stopping.signal.addEventListener("abort", stop);
    const requests = new AsyncQueue<SessionRequest>({ skip: (r, queued) => r.message?.case === "heartbeat" && queued.some((i) => i.message?.case === "heartbeat") });
    const hb = this.timing.heartbeatMs;
    requests.push({ partition: this.opts.partition, message: { case: "hello", value: { switchId: this.facts!.id, heartbeatInterval: durationFromMs(hb) } } });
    let lastHeard = Date.now();
    const timer = setInterval(() => {
      requests.push({ partition: this.opts.partition, message: { case: "heartbeat", value: {} } });
      if (Date.now() - lastHeard > 3 * hb) abort.abort(new Error("the server sent nothing for three heartbeat intervals"));
    }, hb);
    this.session = { abort, requests };
    this.sessions++;
    try {
      for await (const res of this.switches.session(requests, { signal: abort.signal })) {
        lastHeard = Date.now();
        healthy();
        if (res.message.case === "config") {
          this.desired = fromProto(res.message.value);
          this.kick();
        }
      }
    } catch (err) {
      // A session that worked for a while and then broke is a reason to reconnect soon, not to back off further.
      if (!abort.signal.aborted) this.log("warn", "switch session ended", { error: message(err) });
    } finally {
      clearInterval(timer);
      requests.close();
      this.stopping.signal.removeEventListener("abort", stop);
      if (this.session?.abort === abort) this.session = undefined;
    }
  }

  /** Applies the newest desired config; configs arriving meanwhile collapse into one more apply. */
  private kick(): void {
    clearTimeout(this.retry);
    if (this.applying || this.stopping.signal.aborted) return;
    this.applying = (async () => {
      try {
        let done: DesiredConfig | undefined;
        let failed = false;
        while (this.desired && this.desired !== done) {
          done = this.desired;
          failed = !(await this.applyAndReport(done));
        }
        if (failed && !this.stopping.signal.aborted) {
          // Same config again: the cause (a busy NOS, a file lock) may be gone; a config
          // that stays invalid keeps failing and keeps being reported.
          this.retry = setTimeout(() => {
            if (this.desired === done) this.desired = { ...done! };
            this.kick();
          }, this.timing.retryMs);
        }
      } finally {
        this.applying = undefined;
      }
    })();
  }

  /** True when the config is in place. */
  private async applyAndReport(config: DesiredConfig): Promise<boolean> {
    let result: ApplyResult;
    try {
      result = await this.applier!.apply(config);
    } catch (err) {
      result = { generation: config.generation, changed: false, durationMs: 0, error: `apply failed: ${message(err)}` };
    }
    if (result.error === "") this.appliedGeneration = result.generation;
    else this.log("warn", "sync failed", { generation: result.generation, error: result.error });
    const status: SyncStatus = { ...result, at: new Date() };
    this.lastSync = status;
    await this.report(status).catch((err) => this.log("warn", "sync report failed", { error: message(err) }));
    for (const fn of this.listeners) fn(status);
    return result.error === "";
  }

  /** Reports on whichever session is open now; with none, the next session's config brings a new report. */
  private async report(s: SyncStatus): Promise<void> {
    const [ports, peers] = await Promise.all([this.opts.os.portStates(), this.opts.os.bgpPeers()]);
    this.session?.requests.push({
      partition: this.opts.partition,
      message: {
        case: "sync",
        value: {
          generation: BigInt(s.generation),
          duration: durationFromMs(Math.round(s.durationMs)),
          error: printable(s.error),
          ports: [...ports].map(([name, p]) => ({
            name,
            adminState: p.adminUp === undefined ? SwitchPortAdminState.UNSPECIFIED : p.adminUp ? SwitchPortAdminState.UP : SwitchPortAdminState.DOWN,
            operState: p.oper === "up" ? SwitchPortOperState.UP : p.oper === "down" ? SwitchPortOperState.DOWN : SwitchPortOperState.UNKNOWN,
          })),
          bgpPeers: peers.map((b) => ({
            port: b.port,
            neighbor: b.neighbor,
            peerGroup: b.peerGroup,
            vrf: b.vrf,
            state: b.state,
            establishedSince: b.establishedSince ? timestampFromDate(b.establishedSince) : undefined,
            sentPrefixes: BigInt(b.sentPrefixes),
            acceptedPrefixes: BigInt(b.acceptedPrefixes),
          })),
        },
      },
    });
  }

  /**
   * Installed machines announce themselves by LLDP ("provisioned" in the
   * system description, the machine id as system name). A batch holds the
   * machines the newest poll saw, not every one seen since the last batch: a
   * machine freed and allocated again within one batch interval would
   * otherwise be reported by its old OS while its new one installs. A batch
   * that fails is not kept: the next poll sees again who is still there.
   */
  private async phoneHomeLoop(): Promise<void> {
    let nextFlush = Date.now() + this.timing.phoneHomeMs;
    while (!this.stopping.signal.aborted) {
      try {
        const sightings = await this.opts.os.lldpSightings();
        this.phoned.clear();
        for (const s of sightings) {
          if (s.sysDescription.includes("provisioned") && /^[0-9a-f-]{36}$/i.test(s.sysName)) this.phoned.add(s.sysName.toLowerCase());
        }
        if (Date.now() >= nextFlush) {
          nextFlush = Date.now() + this.timing.phoneHomeMs;
          await this.flushPhoneHome();
        }
      } catch (err) {
        this.log("warn", "phone-home failed", { error: message(err) });
      }
      await sleep(Math.min(this.timing.lldpPollMs, Math.max(0, nextFlush - Date.now())), this.stopping.signal);
    }
  }

  private async flushPhoneHome(): Promise<void> {
    if (this.phoned.size === 0) return;
    const batch = [...this.phoned].slice(0, 1000);
    const where = this.facts ? ` via ${this.facts.id}` : "";
    await this.events.send(
      { partition: this.opts.partition, events: batch.map((machineId) => ({ machineId, type: ProvisioningEventType.PHONED_HOME, message: `phoned home${where}` })) },
      { signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(20_000)]) },
    );
  }
}

/** A listen address on every interface is no address to give machines: they reach the switch on the PXE VLAN. */
function reachableEndpoint(endpoint: string, pxeCidr: string): string {
  const { host, port } = parseHostPort(endpoint);
  if (host !== "" && host !== "0.0.0.0" && host !== "::") return endpoint;
  return formatHostPort({ host: pxeCidr.split("/")[0]!, port });
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
