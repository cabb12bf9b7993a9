import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { formatBootParams } from "../hammer/boot-params.js";

export type PixieLog = (msg: string, fields?: Record<string, unknown>) => void;

/** What a machine boots: the partition's kernel and initrds, and the command line with the machine's own parameters. */
export interface BootAnswer {
  kernel: string;
  initrd: string[];
  /** Carries the machine's credential: never logged. */
  cmdline: string;
  machineId: string;
}

/** Why a machine gets nothing to boot, as an HTTP status (404: not this machine; 503: later; 502: pixie's upstream failed). */
export interface BootRefusal {
  status: 404 | 502 | 503;
  error: string;
}

const MAC = /^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i;
/** An SMBIOS UUID as iPXE's ${uuid} prints it (and the DHCP server reads from option 97). */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A MAC and UUID from a request path and query, normalized; or why they are not. */
export function readMachine(rawMac: string, rawUuid: string | null): { mac: string; uuid: string } | { error: string } {
  let mac: string;
  try {
    mac = decodeURIComponent(rawMac).toLowerCase().replaceAll("-", ":");
  } catch {
    return { error: "the MAC address is not URL-encoded properly" };
  }
  if (!MAC.test(mac)) return { error: `"${mac.slice(0, 40)}" is not a MAC address` };
  const uuid = (rawUuid ?? "").toLowerCase();
  if (uuid !== "" && !UUID.test(uuid)) return { error: `uuid "${uuid.slice(0, 40)}" is not an SMBIOS UUID` };
  return { mac, uuid };
}

/** Connect codes as HTTP statuses for pixiecore: 5xx makes it try again later, 404 makes it ignore the machine. */
function statusOf(err: ConnectError): BootRefusal["status"] {
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
 * Asks BootService.Boot what the machine with `mac` (and `uuid`, for a
 * machine the control plane does not know yet) boots, and records PXE
 * Booting for it. The same answer serves pixiecore's API mode and the iPXE
 * scripts, so both hand out the same credential and refuse the same machines.
 */
export function createBootAsker(opts: { transport: Transport; partition: string; log?: PixieLog }) {
  const boot = createClient(BootService, opts.transport);
  const log = opts.log ?? (() => {});
  return async (mac: string, uuid: string): Promise<BootAnswer | BootRefusal> => {
    try {
      const config = await boot.boot({ partition: opts.partition, mac, uuid });
      if (!config.kernel) return { status: 404, error: `partition ${opts.partition} has no boot kernel configured` };
      if (!config.machineId || !config.machineCredential || !config.credentialExpiresAt) {
        log("pixie: unknown MAC without UUID", { mac });
        return { status: 404, error: `no machine known with MAC ${mac}: a machine the control plane does not know yet must boot with its UUID (?uuid=\${uuid})` };
      }
      // Without a metal-core to call, metal-hammer could do nothing: the leaves have not registered yet, so try again later.
      if (config.coreEndpoints.length === 0) {
        log("pixie: no metal-core endpoint known yet", { mac, machineId: config.machineId });
        return { status: 503, error: `no metal-core of partition ${opts.partition} serves machines yet` };
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
      return { kernel: config.kernel, initrd: config.initRamDisks, cmdline: config.cmdline ? `${config.cmdline} ${params}` : params, machineId };
    } catch (err) {
      const ce = ConnectError.from(err);
      log("pixie: boot config failed", { mac, code: Code[ce.code], err: ce.rawMessage });
      return { status: statusOf(ce), error: ce.rawMessage };
    }
  };
}

export const isRefusal = (a: BootAnswer | BootRefusal): a is BootRefusal => "status" in a;
