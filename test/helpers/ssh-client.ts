import { execFileSync, spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "vitest";
import { parseHostPort } from "../../client/host-port.js";
import { eventually } from "./eventually.js";
import { WAIT_MS } from "./timeouts.js";

/**
 * The real OpenSSH client against metal-console, as a user runs it: batch
 * mode (nothing may prompt), only the given key, strict host key checking
 * against a known_hosts written from the persisted host key, and the token in
 * LC_METAL_TOKEN forwarded with SendEnv. Shared by the server-level console
 * tests and the lab's.
 */
export interface ConsoleTarget {
  host: string;
  port: number;
  /** A known_hosts file holding the console's host key (see writeKnownHosts). */
  knownHosts: string;
  /** HOME of the ssh process: a scratch directory, so that the user's own ~/.ssh never counts. */
  home: string;
}

export interface SshOptions {
  /** Private key file, as ssh-keygen wrote it. */
  key: string;
  /** Sent as LC_METAL_TOKEN; undefined sends none. */
  token?: string;
  /** Runs ssh under util-linux script, so that it has a real terminal of this size (a pty-req with it). */
  terminal?: { columns: number; rows: number };
}

/** A key pair made by the real ssh-keygen, as a user's would be. */
export async function generateKey(dir: string, name: string): Promise<{ file: string; pub: string }> {
  const file = join(dir, `id_${name}`);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${name}@test`, "-f", file]);
  return { file, pub: (await readFile(`${file}.pub`, "utf8")).trim() };
}

/** known_hosts with the console's host key ("ssh-ed25519 AAAA…") for host:port, in OpenSSH's [host]:port form. */
export async function writeKnownHosts(file: string, host: string, port: number, hostKey: string): Promise<string> {
  await writeFile(file, `[${host}]:${port} ${hostKey}\n`);
  return file;
}

/** host:port (as the lab reports its console address) split for a ConsoleTarget. */
export function splitAddress(address: string): { host: string; port: number } {
  const { host, port } = parseHostPort(address);
  return { host, port };
}

export type SshSession = ReturnType<typeof sshConsole>;

/** Starts ssh into the console of `machineId` (the SSH user name); -tt gives the session a PTY even without a terminal. */
export function sshConsole(target: ConsoleTarget, machineId: string, o: SshOptions) {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: target.home };
  if (o.token !== undefined) env.LC_METAL_TOKEN = o.token;
  const args = [
    "-F",
    "/dev/null",
    "-tt",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-i",
    o.key,
    "-o",
    `UserKnownHostsFile=${target.knownHosts}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "SendEnv=LC_METAL_TOKEN",
    "-o",
    "LogLevel=ERROR",
    "-p",
    String(target.port),
    `${machineId}@${target.host}`,
  ];
  const child = o.terminal
    ? spawn("script", ["-q", "-e", "-c", `stty cols ${o.terminal.columns} rows ${o.terminal.rows}; exec ssh ${args.map((a) => `'${a}'`).join(" ")}`, "/dev/null"], { env, stdio: ["pipe", "pipe", "pipe"] })
    : spawn("ssh", args, { env, stdio: ["pipe", "pipe", "pipe"] });
  const seen = { out: "", err: "", code: undefined as number | null | undefined };
  child.stdout.on("data", (d: Buffer) => (seen.out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (seen.err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve((seen.code = code))));
  // What ssh printed by the time a wait gave up, not when it began.
  const waitFor = <R>(what: string, probe: () => R | undefined, timeoutMs: number) =>
    eventually(what, probe, timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}; ssh printed: ${JSON.stringify(seen.out.slice(-300))} / stderr ${JSON.stringify(seen.err)}`);
    });
  return {
    seen,
    exited,
    type: (text: string) => child.stdin.write(text),
    see: (text: string, timeoutMs = WAIT_MS) => waitFor(`"${text}" in the output`, () => seen.out.includes(text) || undefined, timeoutMs),
    /** The exit status, waited for with a timeout that says what was seen (a plain `await exited` would only hit the test's timeout). */
    ends: (timeoutMs = WAIT_MS) => waitFor("ssh to exit", () => (seen.code === undefined ? undefined : { code: seen.code }), timeoutMs).then((e) => e.code),
    kill: () => child.kill(),
  };
}

/** A refused ssh: it exits 1 without having connected, and its stderr (returned) says why. */
export async function refusedConsole(target: ConsoleTarget, machineId: string, o: SshOptions): Promise<string> {
  const s = sshConsole(target, machineId, o);
  const code = await s.ends();
  expect(s.seen.out).not.toContain("connected to");
  expect(code, `${s.seen.err} ${s.seen.out}`).toBe(1);
  return s.seen.err;
}
