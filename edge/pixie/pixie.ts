import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { formatBootParams } from "../hammer/boot-params.js";

export interface PixieOptions {
  /** Infra token of the partition: it asks BootService.Boot and Dhcp, and never leaves pixie. */
  transport: Transport;
  partition: string;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

const MAC = /^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i;
/** An SMBIOS UUID as iPXE's ${uuid} prints it (and the DHCP server reads from option 97). */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

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
 * answer says. The boot script passes the firmware's SMBIOS UUID along as
 * `?uuid=` (iPXE's ${uuid}); the control plane needs it only for a machine it
 * does not know yet. The answer is the partition's boot configuration
 * (metal-hammer's kernel, initrd and command line), and the command line
 * carries the machine's own credential and its leaves' metal-core endpoints:
 * metal-hammer never sees the partition's infra token. The request also
 * records "PXE Booting" for the machine through BootService.Dhcp.
 */
export function createPixieHandler(opts: PixieOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const boot = createClient(BootService, opts.transport);
  const log = opts.log ?? (() => {});
  const reply = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...(status === 503 ? { "retry-after": "5" } : {}) });
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
    let mac: string;
    try {
      mac = decodeURIComponent(m[1]!).toLowerCase().replaceAll("-", ":");
    } catch {
      return reply(res, 400, { error: "the MAC address is not URL-encoded properly" });
    }
    if (!MAC.test(mac)) return reply(res, 400, { error: `"${mac.slice(0, 40)}" is not a MAC address` });
    const uuid = (url.searchParams.get("uuid") ?? "").toLowerCase();
    if (uuid !== "" && !UUID.test(uuid)) return reply(res, 400, { error: `uuid "${uuid.slice(0, 40)}" is not an SMBIOS UUID` });
    void (async () => {
      try {
        const config = await boot.boot({ partition: opts.partition, mac, uuid });
        if (!config.kernel) return reply(res, 404, { error: `partition ${opts.partition} has no boot kernel configured` });
        if (!config.machineId || !config.machineCredential || !config.credentialExpiresAt) {
          log("pixie: unknown MAC without UUID", { mac });
          return reply(res, 404, { error: `no machine known with MAC ${mac}: a machine the control plane does not know yet must boot with its UUID (?uuid=\${uuid})` });
        }
        // Without a metal-core to call, metal-hammer could do nothing: the leaves have not registered yet, so try again later.
        if (config.coreEndpoints.length === 0) {
          log("pixie: no metal-core endpoint known yet", { mac, machineId: config.machineId });
          return reply(res, 503, { error: `no metal-core of partition ${opts.partition} serves machines yet` });
        }
        const machineId = config.machineId;
        await boot.dhcp({ partition: opts.partition, machineId }).catch((err) => {
          // The machine should boot even when its event cannot be stored; the hammer's own events follow.
          log("pixie: recording PXE Booting failed", { mac, machineId, err: String(err) });
        });
        const params = formatBootParams({
          machineId,
          partition: opts.partition,
          credential: config.machineCredential,
          credentialExpiresAt: timestampDate(config.credentialExpiresAt),
          cores: config.coreEndpoints,
        });
        // The command line carries the credential: logged are the machine and where it is sent, never the line itself.
        log("pixie: booting", { mac, machineId, cores: config.coreEndpoints });
        reply(res, 200, { kernel: config.kernel, initrd: config.initRamDisks, cmdline: config.cmdline ? `${config.cmdline} ${params}` : params });
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
