import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Transport } from "@connectrpc/connect";
import { createBootAsker, isRefusal, type PixieLog, readMachine } from "./boot-answer.js";
import { bootScript, machineScript, refusalScript } from "./ipxe.js";

export interface PixieOptions {
  /** Infra token of the partition: it asks BootService.Boot and Dhcp, and never leaves pixie. */
  transport: Transport;
  partition: string;
  log?: PixieLog;
  /**
   * pixie's URL as machines reach it, for the scripts that chain back to it
   * (`http://10.0.0.1:8081`). Unset: taken from each request's Host header,
   * which is the address the machine's iPXE used.
   */
  publicUrl?: string;
}

/** A Host header fit to put into a URL: a name or address, an optional port. */
const HOST = /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$/;

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
 *
 * The same answers as iPXE scripts, for machines booted by pixie's own proxy
 * DHCP and TFTP (dnsmasq.ts): `GET /ipxe/boot.ipxe`, which every machine's
 * iPXE chains to first, and `GET /ipxe/<mac>?uuid=` (see ipxe.ts).
 */
export function createPixieHandler(opts: PixieOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const ask = createBootAsker(opts);
  const reply = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...(status === 503 ? { "retry-after": "5" } : {}) });
    res.end(JSON.stringify(body));
  };
  const script = (res: ServerResponse, status: number, text: string) => {
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
    res.end(text);
  };
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://pixie");
    const api = /^\/v1\/boot\/([^/]+)$/.exec(url.pathname);
    const ipxe = /^\/ipxe\/([^/]+)$/.exec(url.pathname);
    if (!api && !ipxe) return reply(res, 404, { error: "not found" });
    if (req.method !== "GET") {
      res.setHeader("allow", "GET");
      return reply(res, 405, { error: "only GET" });
    }
    if (ipxe?.[1] === "boot.ipxe") {
      const host = req.headers.host ?? "";
      const base = opts.publicUrl ?? (HOST.test(host) ? `http://${host}` : undefined);
      if (!base) return script(res, 400, "#!ipxe\necho pixie: the request has no usable Host header\nexit 1\n");
      try {
        return script(res, 200, bootScript(base));
      } catch (err) {
        // Only a public URL iPXE cannot use gets here: the operator's setting, not the machine's request.
        opts.log?.("pixie: public URL unfit for iPXE", { err: (err as Error).message });
        return script(res, 500, "#!ipxe\necho pixie: its public URL cannot be used by iPXE\nexit 1\n");
      }
    }
    const machine = readMachine((api ?? ipxe)![1]!, url.searchParams.get("uuid"));
    if ("error" in machine) return api ? reply(res, 400, machine) : script(res, 400, refusalScript({ status: 404, error: machine.error }));
    void (async () => {
      const answer = await ask(machine.mac, machine.uuid);
      if (api) {
        if (isRefusal(answer)) return reply(res, answer.status, { error: answer.error });
        return reply(res, 200, { kernel: answer.kernel, initrd: answer.initrd, cmdline: answer.cmdline });
      }
      // iPXE shows a refusal on the machine's console and asks again later; an HTTP error would only say "failed".
      if (isRefusal(answer)) return script(res, 200, refusalScript(answer));
      try {
        script(res, 200, machineScript(answer));
      } catch (err) {
        // The partition's boot configuration cannot pass through iPXE: the operator must fix it, the machine waits.
        opts.log?.("pixie: boot config unfit for iPXE", { mac: machine.mac, machineId: answer.machineId, err: (err as Error).message });
        script(res, 200, refusalScript({ status: 502, error: (err as Error).message }));
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
