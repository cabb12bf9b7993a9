import { createServer } from "node:net";

/** One address the lab listens on, and the setting that chooses it (for the error a person reads). */
export interface LabPort {
  what: string;
  address: string;
  /** e.g. "--listen / METAL_LISTEN". */
  setting: string;
}

/** A start-up failure a person can act on: printed as one line, without a stack. */
export class LabStartError extends Error {}

function split(address: string): { host: string; port: number } {
  const sep = address.lastIndexOf(":");
  return { host: address.slice(0, sep).replace(/^\[(.*)\]$/, "$1"), port: Number(address.slice(sep + 1)) };
}

/**
 * The error to show when binding `port` failed, or undefined when the error
 * is not about the address (then it is a bug, and its stack is worth seeing).
 */
export function listenError(port: LabPort, err: unknown): LabStartError | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const where = `${port.what} on ${port.address}`;
  if (code === "EADDRINUSE") return new LabStartError(`${where}: the address is in use (another metal-lab?); stop that, or choose another with ${port.setting}`);
  if (code === "EACCES") return new LabStartError(`${where}: not allowed to listen there; choose another address with ${port.setting}`);
  if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND" || code === "EAI_AGAIN") return new LabStartError(`${where}: no such local address; choose another with ${port.setting}`);
  return undefined;
}

/**
 * Binds each fixed port once and lets it go again, before the slow part of
 * the start (opening the databases): a taken port is reported at once, by
 * its setting. The real listeners map their errors the same way, for the
 * rare port taken in between.
 */
export async function checkPortsFree(ports: readonly LabPort[]): Promise<void> {
  for (const p of ports) {
    const { host, port } = split(p.address);
    if (port === 0) continue;
    await new Promise<void>((resolve, reject) => {
      const probe = createServer();
      probe.once("error", (err) => reject(listenError(p, err) ?? err));
      probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
    });
  }
}

/** Runs `start`, turning an address error into the one-line error of `port`. */
export async function bindingAs<T>(port: LabPort, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    throw listenError(port, err) ?? err;
  }
}
