import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { ProvisioningEventType } from "../../gen/metal/api/v1/machine_pb.js";
import { eventually } from "./lab-harness.js";
import { type LabPlace, labPlace, REPO } from "./lab-process.js";
import { blockAfter, manualMatch, transcript } from "./readme-blocks.js";

/**
 * The README as a new user follows it: the lab started with the command the
 * walk-through (docs/metalctl.md) names, the Try-it block run as one script (in a terminal, as
 * a person would: the console needs one), then the walk-through's commands
 * with the ids they printed. A user with an SSH key of their own, no metalctl
 * config, scratch databases and ports the system picks are all that differ.
 */
const run = promisify(execFile);
let place: LabPlace;
let lab: ChildProcess;
let labErr = "";
let labExited = false;
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

const startCommand = () => manualMatch(/In the lab \(`(npm start[^`]*)`/)?.[1];

beforeAll(async () => {
  place = await labPlace();
  await mkdir(join(place.home, ".ssh"), { recursive: true, mode: 0o700 });
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "newcomer", "-f", join(place.home, ".ssh", "id_ed25519")]);
  // OpenSSH finds ~ in the password database, not in $HOME: this ssh is the real one as it behaves for a user whose home is
  // the test's (their key, their known_hosts, no config), so the test neither uses nor touches the account's own ~/.ssh.
  const bin = join(place.dir, "ssh-bin");
  await mkdir(bin, { recursive: true });
  const ssh = (await run("bash", ["-c", "command -v ssh"])).stdout.trim();
  const home = join(place.home, ".ssh");
  await writeFile(
    join(bin, "ssh"),
    `#!/bin/sh\nexec ${ssh} -F none -o UserKnownHostsFile=${home}/known_hosts -o GlobalKnownHostsFile=/dev/null -o IdentityFile=${home}/id_ed25519 -o IdentitiesOnly=yes "$@"\n`,
    { mode: 0o755 },
  );
  place.env.PATH = `${bin}:${place.env.PATH}`;
  const command = startCommand();
  expect(command).toBe("npm start -- --machines 3");
  // Its own process group, so that Ctrl-C reaches npm and the lab under it as in a terminal.
  lab = spawn("bash", ["-c", command!], { cwd: REPO, env: place.env, detached: true, stdio: ["ignore", "ignore", "pipe"] });
  lab.stderr!.setEncoding("utf8").on("data", (d: string) => (labErr += d));
  lab.once("exit", () => (labExited = true));
  await eventually(
    "the lab to say all 3 machines are ready",
    () => {
      if (labExited) throw new Error(labErr);
      return /all 3 machines ready/.test(labErr);
    },
    180_000,
  );
}, 200_000);

afterAll(async () => {
  if (lab && !labExited) {
    const exited = new Promise((r) => lab.once("exit", r));
    process.kill(-lab.pid!, "SIGINT");
    await exited;
  }
  await place?.dispose();
});

const adminMachines = async () => {
  const token = (await readFile(join(place.dataDir, "admin-token"), "utf8")).trim();
  const url = /metal-lab is up: API (http:\/\/\S+),/.exec(labErr)![1]!;
  return createClient(AdminMachineService, createTransport({ baseUrl: url, protocol: "connect", binary: true, token }));
};

/** The lab's three machines are free and in the waiting pool. */
const allWaiting = async () => {
  const machines = (await (await adminMachines()).list({ partition: "lab" })).machines;
  return machines.length === 3 && machines.every((m) => !m.allocation && m.waiting && m.events?.log[0]?.type === ProvisioningEventType.WAITING);
};

interface Step {
  line: string;
  rc: number;
  output: string;
}

/**
 * Runs `lines` as one bash script in a pseudo-terminal (script(1)), noting
 * each line's exit status and output, and answers like a person: `yes` to
 * ssh's host key question (after checking its fingerprint is the one the lab
 * printed), `~.` once the console says it is connected.
 */
async function runInTerminal(lines: string[], fingerprint: string): Promise<{ steps: Step[]; vars: Record<string, string> }> {
  const script = lines.flatMap((line, i) => {
    const assigned = /^([A-Z_]+)=\$\(/.exec(line)?.[1];
    return [`echo "@@begin ${i}"`, line, `echo "@@end ${i} $?"`, ...(assigned ? [`echo "@@var ${assigned}=$${assigned}"`] : [])];
  });
  const file = join(place.dir, "tryit.sh");
  await writeFile(file, `${script.join("\n")}\n`);
  const term = spawn("script", ["-qefc", `bash ${file}`, "/dev/null"], { cwd: REPO, env: place.env, stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let answeredHostKey = false;
  let left = false;
  const exited = new Promise<number | null>((r) => term.once("exit", r));
  term.stdout!.setEncoding("utf8").on("data", (d: string) => {
    out += d.replace(/\r/g, "");
    const prompt = /key fingerprint is (SHA256:\S+)\.[\s\S]*continue connecting/.exec(out);
    if (prompt && !answeredHostKey) {
      answeredHostKey = true;
      term.stdin!.write(prompt[1] === fingerprint ? "yes\r" : "no\r");
    }
    if (/connected to [0-9a-f-]{36}, exit with ~\./.test(out) && !left) {
      left = true;
      // ~. counts at the start of a line: Enter first, then the escape, as a person types it.
      setTimeout(() => term.stdin!.write("\r"), 200);
      setTimeout(() => term.stdin!.write("~."), 600);
    }
  });
  term.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  await eventually("the Try-it script to end", () => exited.then(() => true), 240_000).catch((err: unknown) => {
    term.kill("SIGKILL");
    throw new Error(`${String(err)}\n${out}`);
  });
  expect(answeredHostKey, out).toBe(true);
  const steps: Step[] = lines.map((line, i) => {
    const m = new RegExp(`@@begin ${i}\\n([\\s\\S]*?)@@end ${i} (\\d+)`).exec(out);
    if (!m) throw new Error(`line ${i + 1} (${line}) did not run:\n${out}`);
    return { line, rc: Number(m[2]), output: m[1]! };
  });
  const vars = Object.fromEntries([...out.matchAll(/@@var (\w+)=(.*)/g)].map((m) => [m[1]!, m[2]!]));
  return { steps, vars };
}

describe("README", () => {
  let projectNetwork = "";

  it("Try it: every line runs as written and ends as its comment says", async () => {
    const block = blockAfter("try it:");
    expect(block.lang).toBe("sh");
    const lines = block.lines.filter((l) => l.trim() !== "");
    const fingerprint = /console host key: (SHA256:\S+)/.exec(labErr)![1]!;
    const { steps, vars } = await runInTerminal(lines, fingerprint);
    const step = (prefix: string) => {
      const s = steps.find((x) => x.line.startsWith(prefix));
      if (!s) throw new Error(`Try it has no line starting "${prefix}"`);
      return s;
    };
    // The block's lines, in order; a changed block needs its expectations here.
    expect(steps.map((s) => s.line.split("#")[0]!.trim())).toEqual([
      "npx metalctl machine list",
      "npx metalctl context use lab-project",
      "NET=$(npx metalctl network list --name lab-net --no-headers | cut -d' ' -f1)",
      "ID=$(npx metalctl machine create --partition lab --size sim-c1 --image debian-12 --hostname web1 --networks $NET --no-headers | cut -d' ' -f1)",
      'npx metalctl machine logs $ID --watch --until "phoned home"',
      "npx metalctl machine console $ID",
      "npx metalctl machine free $ID",
      "npx metalctl context use lab",
    ]);
    const list = step("npx metalctl machine list");
    expect(list.rc, list.output).toBe(0);
    const rows = list.output.trim().split("\n").slice(1);
    expect(rows).toHaveLength(3);
    for (const r of rows) expect(r).toMatch(new RegExp(`^${UUID.source}\\s+Waiting\\s`));
    expect(step("npx metalctl context use lab-project").rc).toBe(0);
    expect(step("NET=").rc).toBe(0);
    expect(vars.NET).toMatch(new RegExp(`^${UUID.source}$`));
    projectNetwork = vars.NET!;
    expect(step("ID=").rc).toBe(0);
    expect(vars.ID).toMatch(new RegExp(`^${UUID.source}$`));
    const logs = step("npx metalctl machine logs");
    expect(logs.rc, logs.output).toBe(0);
    expect(logs.output.trim().split("\n").at(-1)).toMatch(/Phoned Home\s+phoned home via leaf0[12]$/);
    const console = step("npx metalctl machine console");
    expect(console.output).toContain(`connected to ${vars.ID}, exit with ~.`);
    expect(console.rc, console.output).toBe(255);
    const free = step("npx metalctl machine free");
    expect(free.rc, free.output).toBe(0);
    expect(free.output).toMatch(new RegExp(`${vars.ID}\\s+Machine Reclaim\\s`));
    expect(step("npx metalctl context use lab").rc).toBe(0);
    // "Machine Reclaim, PXE, Waiting again".
    await eventually("the freed machine to wait again", allWaiting, 120_000);
  }, 300_000);

  it("Walk-through: each command, run as written with the ids it printed, prints what docs/metalctl.md shows", async () => {
    const walk = transcript(blockAfter("## Walk-through: allocate a machine").lines);
    expect(walk.map((s) => s.command.split(" ").slice(0, 3).join(" "))).toEqual([
      "metalctl machine list",
      "metalctl network list",
      "metalctl machine create",
      "metalctl machine logs",
      "metalctl machine free",
      "metalctl machine logs",
    ]);
    // A bare metalctl, as `npm link` puts it on PATH.
    const bin = join(place.dir, "bin");
    await mkdir(bin, { recursive: true });
    await symlink(join(REPO, "bin", "metalctl.js"), join(bin, "metalctl")).catch(() => {});
    const env = { ...place.env, PATH: `${bin}:${place.env.PATH}` };
    const readmeNetwork = /--networks (\S+)/.exec(walk[2]!.command)![1]!;
    const ids = new Map<string, string>([[readmeNetwork, projectNetwork]]);
    const columns = (l: string) => l.trim().split(/\s{2,}/);
    const events = (lines: string[]) => lines.slice(1).map((l) => columns(l)[1]);
    await eventually("all machines waiting", allWaiting, 120_000);
    for (const { command, output: shown } of walk) {
      let real = command;
      for (const [from, to] of ids) real = real.replaceAll(from, to);
      const r = await run("bash", ["-c", real], { cwd: REPO, env }).catch((err: { code: number; stdout: string; stderr: string }) => {
        throw new Error(`${real}: exit ${err.code}\n${err.stdout}${err.stderr}`);
      });
      const printed = r.stdout.trimEnd().split("\n");
      expect(columns(printed[0]!), real).toEqual(columns(shown[0]!));
      if (command.startsWith("metalctl machine list")) {
        expect(
          printed.slice(1).map((l) => columns(l).slice(1, 2)),
          real,
        ).toEqual(shown.slice(1).map((l) => columns(l).slice(1, 2)));
      } else if (command.startsWith("metalctl network list")) {
        expect(columns(printed[1]!).slice(1, 5)).toEqual(columns(shown[1]!).slice(1, 5));
      } else if (command.startsWith("metalctl machine create")) {
        // Which waiting machine it gets is the control plane's choice: later commands use the one it printed.
        ids.set(columns(shown[1]!)[0]!, columns(printed[1]!)[0]!);
        expect(columns(printed[1]!).slice(3), real).toEqual(columns(shown[1]!).slice(3));
      } else if (command.startsWith("metalctl machine free")) {
        expect(columns(printed[1]!)[1], real).toBe(columns(shown[1]!)[1]);
      } else {
        // logs --watch --until: the same events in the same order, ending with the one it waited for (earlier
        // allocations of the same machine may precede them).
        const want = events(shown);
        expect(events(printed).slice(-want.length), real).toEqual(want);
      }
    }
  }, 300_000);
});
