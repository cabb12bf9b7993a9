import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../helpers/eventually.js";
import type { Processes } from "../helpers/netns.js";
import { scaled } from "../helpers/timeouts.js";

/** What an lldpd announces on one port: its system name and the port id (with the id's subtype). */
export interface Announced {
  readonly name: string;
  readonly portId: string;
  readonly portIdType: string;
}

/** The local side of `port` from `lldpcli -f json show interfaces ports PORT` (lists of one are plain objects there). */
export function parseAnnounced(json: string, port: string): Announced | undefined {
  const doc = JSON.parse(json) as { lldp?: { interface?: unknown } };
  const entries = [doc.lldp?.interface ?? []].flat() as Record<string, { chassis?: Record<string, unknown>; port?: { id?: { type?: string; value?: string } } }>[];
  for (const entry of entries) {
    const local = entry[port];
    if (!local) continue;
    return { name: Object.keys(local.chassis ?? {})[0] ?? "", portId: local.port?.id?.value ?? "", portIdType: local.port?.id?.type ?? "" };
  }
  return undefined;
}

/**
 * An lldpd on a tap's host side playing one leaf's switch port (`leaf` as system name, `port` as locally
 * assigned port id), the way the machine's lldpd must hear it for the control plane to wire the machine.
 * Its chassis id comes from its own tap: two leaves with one chassis id would be one neighbour to the
 * machine's lldpd, which keeps one name per chassis (whichever leaf spoke last).
 *
 * lldpcli's `configure ports` acts on the ports lldpd knows at that moment and does nothing, silently, for a
 * port it has not found yet; and a port lldpd drops and finds again (a carrier change) starts from its
 * defaults. So the port is configured once lldpd lists it, checked, and checked again by `keep` for as long
 * as the test runs: each time it is found announcing something else, it is configured again and that is
 * counted in `drifts` and logged, so a test that still fails shows whether this happened.
 */
export class LeafLldpd {
  readonly socket: string;
  readonly drifts: string[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ns: string,
    private readonly dir: string,
    readonly tap: string,
    readonly leaf: string,
    private readonly port = "swp1",
  ) {
    this.socket = join(dir, `lldpd-${leaf}.sock`);
  }

  async start(procs: Processes): Promise<void> {
    await procs.start(this.ns, `lldpd-${this.leaf}`, ["lldpd", "-d", "-I", this.tap, "-C", this.tap, "-u", this.socket, "-O", join(this.dir, "no-lldpd.conf")]);
    await eventually(`lldpd of ${this.leaf} to open its control socket`, () => existsSync(this.socket), scaled(15_000));
    await eventually(`lldpd of ${this.leaf} to list ${this.tap}`, () => this.announced(), scaled(15_000));
    await this.configure();
    await eventually(`lldpd of ${this.leaf} to announce ${this.leaf} ${this.port} on ${this.tap}`, async () => this.right(await this.announced()), scaled(15_000));
  }

  /** Checks every few seconds until stopped; `log` gets a line for each drift found. */
  keep(log: (line: string) => void, everyMs = 5_000): void {
    let busy = false;
    this.timer = setInterval(() => {
      if (busy) return;
      busy = true;
      this.announced()
        .then(async (a) => {
          if (this.right(a)) return;
          const line = `lldpd-${this.leaf}: announced ${a ? `${a.name} ${a.portIdType} ${a.portId}` : "nothing"} on ${this.tap}; configured again`;
          this.drifts.push(line);
          log(line);
          await this.configure();
        })
        .catch(() => {})
        .finally(() => {
          busy = false;
        });
    }, everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** lldpcli's answer, or a failure's message (for a test's diagnosis). */
  async ask(...args: string[]): Promise<string> {
    return this.lldpcli(args).catch((err: Error) => `(lldpcli failed: ${err.message.slice(0, 200)})`);
  }

  private right(a: Announced | undefined): boolean {
    return a?.name === this.leaf && a.portIdType === "local" && a.portId === this.port;
  }

  private async announced(): Promise<Announced | undefined> {
    return parseAnnounced(await this.lldpcli(["-f", "json", "show", "interfaces", "ports", this.tap]), this.tap);
  }

  private async configure(): Promise<void> {
    await this.lldpcli(["configure", "system", "hostname", this.leaf]);
    await this.lldpcli(["configure", "ports", this.tap, "lldp", "portidsubtype", "local", this.port]);
    await this.lldpcli(["configure", "lldp", "tx-interval", "5"]);
  }

  private lldpcli(args: string[]): Promise<string> {
    return new Promise((resolve, reject) =>
      execFile("ip", ["netns", "exec", this.ns, "lldpcli", "-u", this.socket, ...args], { timeout: 10_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`lldpcli ${args.join(" ")}: ${stderr.trim() || err.message}`)) : resolve(stdout),
      ),
    );
  }
}
