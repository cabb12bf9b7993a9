import { parseHostPort } from "../../client/host-port.js";

/**
 * What pixie puts on the discovery kernel's command line for metal-hammer:
 * which machine this is, its partition, the machine's own credential (from
 * BootService.Boot) and the metal-cores of its leaves to reach the control
 * plane through. The kernel passes parameters it does not know on to user
 * space untouched, and the hammer reads them back from /proc/cmdline.
 */
export interface BootParams {
  machineId: string;
  partition: string;
  credential: string;
  credentialExpiresAt: Date;
  /** host:port of the metal-cores' machine endpoints, in order of preference. */
  cores: string[];
}

const KEY = {
  machineId: "metal.machine",
  partition: "metal.partition",
  credential: "metal.credential",
  expires: "metal.credential-expires",
  cores: "metal.cores",
} as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PARTITION = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;
/** A JWT: three base64url parts. */
const CREDENTIAL = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_CREDENTIAL = 2048;
/** The server hands out at most 16 endpoints. */
const MAX_CORES = 16;
/** The longest kernel command line of any architecture is far below this; more is not a command line. */
const MAX_CMDLINE = 65_536;

/** Throws the first thing wrong with `p`, naming the kernel parameter. */
function check(p: BootParams): void {
  if (!UUID.test(p.machineId)) throw new Error(`${KEY.machineId} must be the machine's UUID, not "${clip(p.machineId)}"`);
  if (p.partition.length > 63 || !PARTITION.test(p.partition)) throw new Error(`${KEY.partition} must be a partition id, not "${clip(p.partition)}"`);
  if (p.credential.length > MAX_CREDENTIAL || !CREDENTIAL.test(p.credential)) throw new Error(`${KEY.credential} must be the machine credential BootService.Boot handed out`);
  if (Number.isNaN(p.credentialExpiresAt.getTime())) throw new Error(`${KEY.expires} must be a time`);
  if (p.cores.length === 0) throw new Error(`${KEY.cores} must name at least one metal-core (host:port,...)`);
  if (p.cores.length > MAX_CORES) throw new Error(`${KEY.cores} names more than ${MAX_CORES} metal-cores`);
  for (const c of p.cores) {
    try {
      parseHostPort(c);
    } catch (err) {
      throw new Error(`${KEY.cores}: ${(err as Error).message}`);
    }
  }
}

/** A value quoted in an error: short, and never a secret (only ids and addresses are quoted). */
const clip = (s: string): string => (s.length > 64 ? `${s.slice(0, 64)}…` : s);

/** The parameters as kernel command line words; throws on values that would not read back (checked as parseBootParams does). */
export function formatBootParams(p: BootParams): string {
  check(p);
  return [
    `${KEY.machineId}=${p.machineId}`,
    `${KEY.partition}=${p.partition}`,
    `${KEY.credential}=${p.credential}`,
    `${KEY.expires}=${Math.floor(p.credentialExpiresAt.getTime() / 1000)}`,
    `${KEY.cores}=${p.cores.join(",")}`,
  ].join(" ");
}

/**
 * The hammer's parameters from a kernel command line, ignoring every other
 * parameter; a parameter given twice counts with its last value, as the
 * kernel's own do. Throws an Error saying which parameter is missing or
 * malformed.
 */
export function parseBootParams(cmdline: string): BootParams {
  if (cmdline.length > MAX_CMDLINE) throw new Error(`the kernel command line is longer than ${MAX_CMDLINE} characters`);
  const values = new Map<string, string>();
  for (const word of cmdline.trim().split(/\s+/)) {
    const eq = word.indexOf("=");
    if (eq > 0 && word.startsWith("metal.")) values.set(word.slice(0, eq), word.slice(eq + 1));
  }
  const get = (key: string): string => {
    const v = values.get(key);
    if (v === undefined || v === "") throw new Error(`the kernel command line has no ${key}=: metal-hammer runs from the discovery image pixie boots`);
    return v;
  };
  const machineId = get(KEY.machineId).toLowerCase();
  const partition = get(KEY.partition);
  const credential = get(KEY.credential);
  const expires = get(KEY.expires);
  if (!/^\d{1,12}$/.test(expires)) throw new Error(`${KEY.expires} must be a time in seconds since 1970, not "${clip(expires)}"`);
  const p: BootParams = {
    machineId,
    partition,
    credential,
    credentialExpiresAt: new Date(Number(expires) * 1000),
    cores: get(KEY.cores)
      .split(",")
      .map((c) => c.trim())
      .filter(Boolean),
  };
  check(p);
  return p;
}
