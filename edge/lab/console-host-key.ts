import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { fingerprint } from "../../server/console/access.js";

/** OpenSSH's fingerprint of a public key line ("ssh-ed25519 AAAA…"), as ssh shows it when it asks about the host. */
export function sshFingerprint(publicKey: string): string {
  const blob = publicKey.trim().split(/\s+/)[1];
  if (!blob) throw new Error("not an OpenSSH public key line");
  return fingerprint(blob);
}

const WILDCARDS = new Set(["0.0.0.0", "::", "[::]", ""]);

/**
 * The known_hosts lines for a console listening on `address` (host:port):
 * `[host]:port type key`, the form ssh looks up for a port other than 22. A
 * wildcard address is reached as 127.0.0.1 and localhost from this host.
 */
export function knownHostsLines(address: string, publicKey: string): string[] {
  const sep = address.lastIndexOf(":");
  const host = address.slice(0, sep).replace(/^\[(.*)\]$/, "$1");
  const port = address.slice(sep + 1);
  const [type, blob] = publicKey.trim().split(/\s+/);
  const hosts = WILDCARDS.has(host) ? ["127.0.0.1", "localhost"] : [host];
  return hosts.map((h) => `${port === "22" ? h : `[${h}]:${port}`} ${type} ${blob}`);
}

/** Replaces the file (the lab owns it): one entry per line. */
export async function writeKnownHosts(path: string, lines: string[]): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, lines.map((l) => `${l}\n`).join(""), { mode: 0o644 });
  await rename(tmp, path);
}
