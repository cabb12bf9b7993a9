import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { AsyncQueue } from "../../client/async-queue.js";
import { type BackoffPolicy, backoffPolicy, retryLoop } from "../../client/backoff.js";
import { BMCService, type BMCServiceSessionRequestSchema, type BmcOpenConsole, type BmcPendingCommand } from "../../gen/metal/infra/v1/bmc_pb.js";
import { printable } from "../common/text.js";
import { type BmcAdapter, type BmcInfo, type BmcTarget, identityMismatch, isBmcCommand, parseAddress } from "./adapter.js";
import { CommandStore } from "./command-store.js";
import { type ConsoleAdapter, ConsoleRelays, isConsoleAdapter } from "./console.js";
import { activeLeases, type Lease, type LeaseFilter, parseLeases } from "./leases.js";

type Request = MessageInitShape<typeof BMCServiceSessionRequestSchema>;
type BmcReportInit = NonNullable<Extract<Request["kind"], { case: "reports" }>["value"]["reports"]>[number];

export interface BmcAgentTiming {
  /** Leases are re-read and every BMC queried this often; only changes are sent. */
  pollMs: number;
  /** Every report is sent again this often, changed or not. */
  fullReportMs: number;
  /** A heartbeat goes to the server this often. */
  heartbeatMs: number;
  /** A session from which the server sent nothing for this long is dropped and dialled again. */
  idleMs: number;
  /** Reconnects wait initialMs, doubling up to maxMs (with jitter); a session the server answered starts over. */
  backoff: BackoffPolicy;
}

export const DEFAULT_AGENT_TIMING: BmcAgentTiming = {
  pollMs: 30_000,
  fullReportMs: 5 * 60_000,
  heartbeatMs: 5_000,
  idleMs: 20_000,
  backoff: backoffPolicy(),
};

export interface BmcAgentOptions {
  transport: Transport;
  partition: string;
  /** The agent's name within its partition (its host name by default). */
  agent: string;
  version?: string;
  leaseFile: string;
  /** Where the executed command ids are kept across restarts. */
  stateDir: string;
  adapter: BmcAdapter;
  /** Serial consoles for relays; the BMC adapter itself when it can open them. */
  console?: ConsoleAdapter;
  /** How discovered BMCs are logged in to. */
  credentials: { user: string; password: string; interface: string; port: number };
  filter?: LeaseFilter;
  timing?: Partial<BmcAgentTiming>;
  /** BMC queries and commands running at once. */
  concurrency?: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** At most `n` tasks at once. */
function limiter(n: number) {
  let active = 0;
  const queue: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((r) => queue.push(r));
    active++;
    try {
      return await task();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}

/**
 * metal-bmc: finds the partition's BMCs in the DHCP leases of the BMC
 * network, reports what they say (periodically, and as soon as something
 * changes), and carries out the BMC commands the control plane sends over
 * its session, each command id once.
 */
export class BmcAgent {
  private readonly client: Client<typeof BMCService>;
  private readonly timing: BmcAgentTiming;
  private readonly limit: <T>(task: () => Promise<T>) => Promise<T>;
  private store: CommandStore | undefined;
  private current: AsyncQueue<Request> | undefined;
  /** What was last sent per machine, so unchanged reports are not sent again between full reports. */
  private readonly lastSent = new Map<string, string>();
  private readonly inflight = new Set<string>();
  private readonly machineQueues = new Map<string, Promise<void>>();
  private polling: Promise<void> | undefined;
  private pollAgain: "none" | "changes" | "full" = "none";
  private lastFull = 0;
  private signal: AbortSignal = new AbortController().signal;
  private readonly consoles: ConsoleRelays;
  private readonly relaysRunning = new Set<Promise<void>>();
  /** Sessions established so far; tests and logs read it. */
  sessions = 0;
  /** Deliveries of a command id already known (run, running or done), which were not run again. */
  duplicates = 0;

  constructor(private readonly opts: BmcAgentOptions) {
    this.client = createClient(BMCService, opts.transport);
    this.timing = { ...DEFAULT_AGENT_TIMING, ...opts.timing, backoff: backoffPolicy(opts.timing?.backoff) };
    this.limit = limiter(opts.concurrency ?? 10);
    this.consoles = new ConsoleRelays({
      transport: opts.transport,
      partition: opts.partition,
      adapter: opts.console ?? (isConsoleAdapter(opts.adapter) ? opts.adapter : undefined),
      identify: (target, signal) => opts.adapter.identify(target, signal),
      log: opts.log,
    });
  }

  private log(msg: string, fields?: Record<string, unknown>): void {
    this.opts.log?.(msg, fields);
  }

  /** Runs until `signal` aborts: one session after the other, with backoff in between. */
  async run(signal: AbortSignal): Promise<void> {
    this.signal = signal;
    this.store = await CommandStore.open(join(this.opts.stateDir, "commands.json"));
    const poller = setInterval(() => void this.poll(Date.now() - this.lastFull >= this.timing.fullReportMs), this.timing.pollMs);
    try {
      await retryLoop((ctx) => this.sessionOnce(ctx.signal, ctx.healthy), {
        policy: this.timing.backoff,
        signal,
        onRetry: ({ err }) => err !== undefined && this.log("session ended", { err: err instanceof Error ? err.message : String(err) }),
      });
    } finally {
      clearInterval(poller);
      // Commands under way finish and are recorded; their results go out with the next delivery.
      this.consoles.closeAll();
      await Promise.allSettled([...this.machineQueues.values(), ...this.relaysRunning]);
    }
  }

  /** One session, until it breaks; `healthy` once the server answered (the backoff starts over then). */
  private async sessionOnce(signal: AbortSignal, healthy: () => void): Promise<void> {
    const queue = new AsyncQueue<Request>();
    const abort = new AbortController();
    const onAbort = () => abort.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    let established = false;
    let lastHeard = Date.now();
    queue.push({ partition: this.opts.partition, kind: { case: "hello", value: { agent: this.opts.agent, version: this.opts.version ?? "" } } });
    const heartbeat = setInterval(() => {
      if (Date.now() - lastHeard > this.timing.idleMs) {
        this.log("server silent; reconnecting", { idleMs: this.timing.idleMs });
        abort.abort();
        return;
      }
      queue.push({ kind: { case: "heartbeat", value: { sentAtMs: BigInt(Date.now()) } } });
    }, this.timing.heartbeatMs);
    try {
      const responses = this.client.session(queue, { signal: abort.signal });
      for await (const res of responses) {
        lastHeard = Date.now();
        if (!established) {
          established = true;
          healthy();
          this.sessions++;
          this.current = queue;
          // A new session has no idea what the server knows: everything is reported again.
          this.lastSent.clear();
          void this.poll(true);
        }
        if (res.kind.case === "commands") for (const c of res.kind.value.commands) this.dispatch(c);
        else if (res.kind.case === "openConsole") this.openConsole(res.kind.value, abort.signal);
      }
    } finally {
      clearInterval(heartbeat);
      signal.removeEventListener("abort", onAbort);
      if (this.current === queue) this.current = undefined;
      queue.close();
      abort.abort();
    }
  }

  private send(r: Request): boolean {
    if (!this.current) return false;
    this.current.push({ partition: this.opts.partition, ...r });
    return true;
  }

  private sendResult(id: string, ok: boolean, result: string): void {
    // Unsent results are not lost: the command stays pending and comes again, and the stored result answers it.
    this.send({ kind: { case: "result", value: { commandId: id, ok, result: printable(result) } } });
  }

  /**
   * A delivered command: a known id gets its stored result again; a new one
   * runs after the earlier commands of the same machine (LED off, PXE, reset
   * must happen in that order).
   */
  private dispatch(c: BmcPendingCommand): void {
    const known = this.store!.get(c.id);
    if (known || this.inflight.has(c.id)) this.duplicates++;
    if (known?.state === "finished") return this.sendResult(c.id, known.ok, known.result);
    if (known || this.inflight.has(c.id)) return;
    this.inflight.add(c.id);
    const prev = this.machineQueues.get(c.machineId) ?? Promise.resolve();
    const next = prev
      .then(() => this.limit(() => this.execute(c)))
      .catch((err: unknown) => this.log("command failed unexpectedly", { id: c.id, err: String(err) }))
      .finally(() => {
        this.inflight.delete(c.id);
        if (this.machineQueues.get(c.machineId) === next) this.machineQueues.delete(c.machineId);
      });
    this.machineQueues.set(c.machineId, next);
  }

  private async execute(c: BmcPendingCommand): Promise<void> {
    const store = this.store!;
    if (!(await store.start(c.id))) return;
    let ok = false;
    let result: string;
    if (c.deadlineMs > 0n && BigInt(Date.now()) > c.deadlineMs) {
      // The server has given up on it; running it now would surprise whoever is looking at the machine.
      result = "not run: the deadline had passed when metal-bmc got to it";
    } else if (!isBmcCommand(c.command)) {
      result = `not run: unknown command "${c.command}"`;
    } else if (!c.address) {
      result = "not run: no BMC address is known for the machine";
    } else {
      try {
        const target = this.targetOf(c);
        // Whatever answers at the stored address is not necessarily the machine the command is for.
        const mismatch = identityMismatch(c.machineId, await this.opts.adapter.identify(target, this.signal), c.address);
        if (mismatch) {
          result = `not run: ${mismatch}`;
        } else {
          result = await this.opts.adapter.execute(target, c.command, this.signal);
          ok = true;
        }
      } catch (err) {
        result = err instanceof Error ? err.message : String(err);
      }
    }
    await store.finish(c.id, ok, result.slice(0, 4096));
    this.log("command", { id: c.id, machine: c.machineId, command: c.command, ok, result });
    this.sendResult(c.id, ok, result.slice(0, 4096));
    // A command changes what the BMC reports (power state above all): tell the server now, not at the next poll.
    void this.poll(false);
  }

  /** Console relays currently open. */
  get consoleRelays(): number {
    return this.consoles.count;
  }

  /** A relay lives only as long as the session that asked for it: the server ends its side then too. */
  private openConsole(req: BmcOpenConsole, session: AbortSignal): void {
    this.log("console relay", { relay: req.relayId, machine: req.machineId });
    let target: BmcTarget | undefined;
    try {
      target = req.address ? this.targetOf(req) : undefined;
    } catch (err) {
      // An address that does not parse is one the relay cannot reach: it goes on as one without an address.
      this.log("console relay: unusable BMC address", { relay: req.relayId, address: req.address, err: String(err) });
    }
    const running = this.consoles.relay(req, target, session).finally(() => this.relaysRunning.delete(running));
    this.relaysRunning.add(running);
  }

  private targetOf(c: Pick<BmcPendingCommand, "address" | "user" | "password" | "interface">): BmcTarget {
    const { host, port } = parseAddress(c.address, this.opts.credentials.port);
    const d = this.opts.credentials;
    return { host, port, user: c.user || d.user, password: c.password || d.password, interface: c.interface || d.interface };
  }

  private async readLeases(): Promise<Lease[]> {
    try {
      return activeLeases(parseLeases(await readFile(this.opts.leaseFile, "utf8")), new Date(), this.opts.filter);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
  }

  /**
   * Reads the leases, queries every BMC, and sends what changed (`full`:
   * everything). Runs never overlap: a poll asked for while one runs
   * happens right after it.
   */
  poll(full: boolean): Promise<void> {
    if (this.polling) {
      this.pollAgain = full || this.pollAgain === "full" ? "full" : "changes";
      return this.polling;
    }
    this.polling = (async () => {
      try {
        await this.pollOnce(full);
      } catch (err) {
        this.log("poll failed", { err: String(err) });
      } finally {
        this.polling = undefined;
      }
      const again = this.pollAgain;
      this.pollAgain = "none";
      if (again !== "none" && !this.signal.aborted) await this.poll(again === "full");
    })();
    return this.polling;
  }

  private async pollOnce(full: boolean): Promise<void> {
    const leases = await this.readLeases();
    const d = this.opts.credentials;
    const reports = await Promise.all(
      leases.map((lease) =>
        this.limit(async (): Promise<BmcReportInit | undefined> => {
          let info: BmcInfo;
          try {
            info = await this.opts.adapter.query({ host: lease.ip, port: d.port, user: d.user, password: d.password, interface: d.interface }, this.signal);
          } catch (err) {
            this.log("BMC does not answer", { ip: lease.ip, mac: lease.mac, err: String(err) });
            return undefined;
          }
          return {
            machineId: info.uuid,
            address: `${lease.ip}:${d.port}`,
            mac: lease.mac,
            user: d.user,
            password: d.password,
            interface: d.interface,
            // Within the server's limits: one oversized field would get the whole batch refused, again and again.
            version: info.firmware.slice(0, 128),
            powerState: info.powerState,
            fru: Object.fromEntries(
              Object.entries(info.fru)
                .slice(0, 32)
                .map(([k, v]) => [printable(k.slice(0, 64)), printable(v.slice(0, 256))]),
            ),
            biosVersion: (info.biosVersion ?? "").slice(0, 128),
          };
        }),
      ),
    );
    const byMachine = new Map<string, BmcReportInit>();
    for (const r of reports) if (r && UUID.test(r.machineId!)) byMachine.set(r.machineId!.toLowerCase(), { ...r, machineId: r.machineId!.toLowerCase() });
    const toSend = [...byMachine.values()].filter((r) => full || this.lastSent.get(r.machineId!) !== JSON.stringify(r));
    if (full) this.lastFull = Date.now();
    for (let i = 0; i < toSend.length; i += 1000) {
      const batch = toSend.slice(i, i + 1000);
      if (!this.send({ kind: { case: "reports", value: { reports: batch } } })) return;
      for (const r of batch) this.lastSent.set(r.machineId!, JSON.stringify(r));
    }
  }
}
