import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";

export interface PixieOptions {
  /** Infra token of the partition. */
  transport: Transport;
  partition: string;
  /**
   * The machine id (SMBIOS UUID) behind a booting NIC. The contract has no
   * MAC lookup for infra tokens and pixiecore's API mode sends only the MAC,
   * so the caller knows the mapping: the simulation from its machines, a
   * real installation from the DHCP server (option 97) or an inventory file.
   */
  machineIdOf: (mac: string) => string | undefined | Promise<string | undefined>;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

const MAC = /^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i;

/** Connect codes as HTTP statuses for pixiecore: 5xx makes it try again later, 404 makes it ignore the machine. */
function statusOf(err: ConnectError): number {
  switch (err.code) {
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.ResourceExhausted:
      return 503;
    case Code.NotFound:
    case Code.FailedPrecondition:
      return 404;
    default:
      // A bad token or an internal error of the control plane: pixie's upstream failed, not the request.
      return 502;
  }
}

/**
 * pixiecore's API mode (`pixiecore api <url>`): pixiecore asks
 * `GET /v1/boot/<mac>` for every machine that PXE-boots and boots what the
 * answer says. The answer is the partition's boot configuration (metal-hammer's
 * kernel, initrd and command line); the request also records "PXE Booting"
 * for the machine through BootService.Dhcp.
 */
export function createPixieHandler(opts: PixieOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const boot = createClient(BootService, opts.transport);
  const log = opts.log ?? (() => {});
  const reply = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json", ...(status === 503 ? { "retry-after": "5" } : {}) });
    res.end(JSON.stringify(body));
  };
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://pixie");
    const m = /^\/v1\/boot\/([^/]+)$/.exec(url.pathname);
    if (!m) return reply(res, 404, { error: "not found" });
    if (req.method !== "GET") {
      res.setHeader("allow", "GET");
      return reply(res, 405, { error: "only GET" });
    }
    const mac = decodeURIComponent(m[1]!).toLowerCase().replaceAll("-", ":");
    if (!MAC.test(mac)) return reply(res, 400, { error: `"${mac.slice(0, 40)}" is not a MAC address` });
    void (async () => {
      try {
        const machineId = await opts.machineIdOf(mac);
        if (!machineId) {
          log("pixie: unknown MAC", { mac });
          return reply(res, 404, { error: `no machine known with MAC ${mac}` });
        }
        const [config] = await Promise.all([
          boot.boot({ partition: opts.partition, mac }),
          boot.dhcp({ partition: opts.partition, machineId }).catch((err) => {
            // The machine should boot even when its event cannot be stored; the hammer's own events follow.
            log("pixie: recording PXE Booting failed", { mac, machineId, err: String(err) });
          }),
        ]);
        if (!config.kernel) return reply(res, 404, { error: `partition ${opts.partition} has no boot kernel configured` });
        log("pixie: booting", { mac, machineId });
        reply(res, 200, { kernel: config.kernel, initrd: config.initRamDisks, cmdline: config.cmdline });
      } catch (err) {
        const ce = ConnectError.from(err);
        log("pixie: boot config failed", { mac, code: Code[ce.code], err: ce.rawMessage });
        reply(res, statusOf(ce), { error: ce.rawMessage });
      }
    })();
  };
}

/** The handler on its own HTTP server, listening on `port` (0: any free port) of `host`. */
export async function startPixie(opts: PixieOptions, host = "127.0.0.1", port = 0): Promise<{ server: Server; url: string; close: () => Promise<void> }> {
  const server = createServer(createPixieHandler(opts));
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(port, host, resolve));
  const addr = server.address();
  const url = typeof addr === "object" && addr ? `http://${host}:${addr.port}` : "";
  return { server, url, close: () => new Promise<void>((r) => server.close(() => r())) };
}
