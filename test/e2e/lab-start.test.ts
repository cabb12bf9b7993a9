import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createTransport } from "../../client/transport.js";
import { sshFingerprint } from "../../edge/lab/console-host-key.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { AdminRole, ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { ProvisioningEventType } from "../../gen/metal/api/v1/machine_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { scaled } from "../helpers/timeouts.js";
import { eventually } from "./lab-harness.js";
import { type LabPlace, type LabProcess, labPlace, REPO, spawnLab } from "./lab-process.js";

const run = promisify(execFile);

/** `metal-lab` as a process, started the way `npm start` starts it, in the place of a new user who already has a metalctl config of their own. */
let place: LabPlace;
let lab: LabProcess;
let userConfig: string;
const USER_CONFIG = "current: prod\ncontexts:\n  prod:\n    url: https://metal.example.invalid\n    token: their-own\n";

const as = (url: string, token: string) => createTransport({ baseUrl: url, protocol: "connect", binary: true, token });

interface Contexts {
  current: string;
  contexts: Record<string, { url: string; token: string; project?: string; console?: string; knownHosts?: string; sshKey?: string }>;
}

beforeAll(async () => {
  place = await labPlace();
  userConfig = join(place.home, ".config", "metalctl", "config.yaml");
  await mkdir(join(place.home, ".config", "metalctl"), { recursive: true });
  await writeFile(userConfig, USER_CONFIG);
  lab = spawnLab(["--machines", "3"], place.env, place.dir);
  await lab.waitFor(/all 3 machines ready/, 180_000);
}, scaled(200_000));

afterAll(async () => {
  await lab?.stop();
  await place?.dispose();
});

describe("metal-lab as a process", () => {
  it("tells a person what it does while it starts and when every machine waits; logs are JSON on stdout when it is not a terminal", () => {
    const err = lab.stderr();
    const steps = ["starting: 3 simulated machines", "opening the control plane's databases", "seeding the partition", "powering on 3 machines", "metal-lab is up", "all 3 machines ready"];
    const at = steps.map((s) => err.indexOf(s));
    expect(
      at.every((i) => i >= 0),
      err,
    ).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    expect(err).toMatch(/all 3 machines ready, [\d.]+ s after start: 3\/3 machines waiting for allocation/);
    const lines = lab
      .stdout()
      .split("\n")
      .filter((l) => l !== "");
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(() => JSON.parse(l), l).not.toThrow();
    expect(lines.map((l) => JSON.parse(l).msg)).toContain(`metal-lab listening on ${apiUrl()}`);
  });

  it("says where the admin token is and never prints it", async () => {
    const token = (await readFile(join(place.dataDir, "admin-token"), "utf8")).trim();
    expect(lab.stderr()).toContain("operator admin token: data/admin-token (created now; never printed)");
    expect(lab.stderr()).not.toContain(token);
    expect(lab.stdout()).not.toContain(token);
  });

  it("prints the console's host key fingerprint and writes the known_hosts line the console really presents", async () => {
    const contexts = await labContexts();
    const known = (await readFile(join(place.dataDir, "metalctl", "known_hosts"), "utf8")).trim();
    const [hostPort] = known.split(" ");
    const [, host, port] = /^\[(.+)\]:(\d+)$/.exec(hostPort!)!;
    expect(`${host}:${port}`).toBe(contexts.contexts.lab!.console);
    expect(contexts.contexts.lab!.knownHosts).toBe(join(place.dataDir, "metalctl", "known_hosts"));
    // What OpenSSH itself reads from the port.
    const scanned = (await run("ssh-keyscan", ["-t", "ed25519", "-p", port!, host!])).stdout.trim();
    expect(scanned).toBe(known);
    const printed = /console host key: (SHA256:\S+) \(ED25519\)/.exec(lab.stderr())?.[1];
    expect(printed).toBe(sshFingerprint(known.split(" ").slice(1).join(" ")));
    const keygen = (await run("ssh-keygen", ["-l", "-f", join(place.dataDir, "metalctl", "known_hosts")])).stdout;
    expect(keygen).toContain(printed);
  });

  it("keeps its metalctl contexts in its data directory, leaves the user's own file alone and says how to use its contexts", async () => {
    expect(await readFile(userConfig, "utf8")).toBe(USER_CONFIG);
    const path = join(place.dataDir, "metalctl", "config.yaml");
    expect(lab.stderr()).toContain(`export METALCTL_CONFIG=${path}`);
    const contexts = await labContexts();
    expect(contexts.current).toBe("lab");
    expect(Object.keys(contexts.contexts).sort()).toEqual(["lab", "lab-project"]);
  });

  it("has an operator context and a tenant context whose token is an editor of the lab's project and nothing more", async () => {
    const { contexts } = await labContexts();
    const admin = (await createClient(UserService, as(contexts.lab!.url, contexts.lab!.token)).get({})).user!.token!.roles!;
    expect(admin.adminRole).toBe(AdminRole.ADMIN);
    const tenant = contexts["lab-project"]!;
    expect(tenant.project).toBe("lab-project");
    const roles = (await createClient(UserService, as(tenant.url, tenant.token)).get({})).user!.token!.roles!;
    expect(roles.adminRole).toBe(AdminRole.UNSPECIFIED);
    expect(roles.projectRoles).toEqual({ "lab-project": ProjectRole.EDITOR });
    expect(roles.tenantRoles).toEqual({});
  });

  it("generates an SSH key in its data directory for a user without one, and says how to use it", async () => {
    const key = join(place.dataDir, "metalctl", "id_ed25519");
    expect((await labContexts()).contexts["lab-project"]!.sshKey).toBe(key);
    expect((await readFile(`${key}.pub`, "utf8")).startsWith("ssh-ed25519 ")).toBe(true);
    // OpenSSH reads it: the public key it derives is the one the lab wrote.
    const derived = (await run("ssh-keygen", ["-y", "-f", key])).stdout.trim().split(" ").slice(0, 2).join(" ");
    expect((await readFile(`${key}.pub`, "utf8")).startsWith(derived)).toBe(true);
    expect(lab.stderr()).toContain("--sshpublickey @data/metalctl/id_ed25519.pub");
    expect(existsSync(join(place.home, ".ssh"))).toBe(false);
  });

  it(
    "lets a user without a key of their own allocate and reach the console as a tenant with the commands it printed, against its known_hosts",
    async () => {
      const config = join(place.dataDir, "metalctl", "config.yaml");
      const printed = /npx metalctl (machine create .*)$/m.exec(lab.stderr())![1]!;
      expect(printed).toContain("--sshpublickey @data/metalctl/id_ed25519.pub");
      const metalctl = (args: string[]) => run(process.execPath, [join(REPO, "bin/metalctl.js"), ...args], { cwd: place.dir, env: { ...place.env, METALCTL_CONFIG: config } });
      const created = JSON.parse((await metalctl(["--context", "lab-project", ...printed.split(" "), "-o", "json"])).stdout) as { id: string };
      await eventually(
        "the machine to phone home",
        async () => {
          const log = JSON.parse((await metalctl(["--context", "lab-project", "machine", "describe", created.id, "-o", "json"])).stdout) as { events?: { log?: { type: string }[] } };
          return log.events?.log?.[0]?.type === "PROVISIONING_EVENT_TYPE_PHONED_HOME";
        },
        scaled(120_000),
      );
      const { contexts } = await labContexts();
      const tenant = contexts["lab-project"]!;
      const [host, port] = tenant.console!.split(":");
      // The real ssh, trusting only the lab's known_hosts, with the key the lab generated and the tenant context's token.
      const ssh = spawn(
        "ssh",
        [
          "-F",
          "none",
          "-tt",
          "-o",
          "BatchMode=yes",
          "-o",
          "StrictHostKeyChecking=yes",
          "-o",
          `UserKnownHostsFile=${tenant.knownHosts}`,
          "-o",
          "GlobalKnownHostsFile=/dev/null",
          "-o",
          "IdentitiesOnly=yes",
          "-i",
          tenant.sshKey!,
          "-p",
          port!,
          "-o",
          "SendEnv=LC_METAL_TOKEN",
          `${created.id}@${host}`,
        ],
        { env: { ...place.env, LC_METAL_TOKEN: tenant.token }, stdio: ["pipe", "pipe", "pipe"] },
      );
      let out = "";
      ssh.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
      ssh.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
      const exited = new Promise((r) => ssh.once("exit", r));
      try {
        await eventually(`the console to connect (${out})`, () => out.includes(`connected to ${created.id}`), 60_000);
      } finally {
        ssh.kill();
        await exited;
      }
      await metalctl(["--context", "lab-project", "machine", "free", created.id]);
      await eventually("3 machines waiting again", allThreeWaiting, 120_000);
    },
    scaled(240_000),
  );

  it("refuses a port that is taken with one line naming the setting, before opening any database", async () => {
    const api = new URL(apiUrl()).host;
    const labServer = /lab server (http:\/\/\S+);/.exec(lab.stderr())![1]!;
    for (const [env, setting] of [
      [{ METAL_LISTEN: api }, "--listen / METAL_LISTEN"],
      [{ METAL_LAB_LISTEN: new URL(labServer).host }, "--lab-listen / METAL_LAB_LISTEN"],
      [{ METAL_CONSOLE_LISTEN: (await labContexts()).contexts.lab!.console! }, "--console-listen / METAL_CONSOLE_LISTEN"],
    ] as const) {
      const second = spawnLab([], { ...place.env, METAL_DATA_DIR: join(place.dir, "second"), ...env }, place.dir);
      expect(await second.exited).toBe(1);
      const lines = second.stderr().trim().split("\n");
      expect(lines.at(-1)).toMatch(
        new RegExp(`^metal-lab: .* on ${escapeRegExp(Object.values(env)[0]!)}: the address is in use \\(another metal-lab\\?\\); stop that, or choose another with ${escapeRegExp(setting)}$`),
      );
      expect(second.stderr()).not.toMatch(/\n\s+at /);
      expect(existsSync(join(place.dir, "second", "admin-token"))).toBe(false);
    }
  });

  it(
    "after a restart with fewer machines, the ones it no longer runs are gone from the control plane, and pretty logs when asked",
    async () => {
      const admin = createClient(AdminMachineService, as(apiUrl(), (await readFile(join(place.dataDir, "admin-token"), "utf8")).trim()));
      const before = (await admin.list({ partition: "lab" })).machines.map((m) => m.id);
      expect(before).toHaveLength(3);
      expect(await lab.stop()).toBe(0);
      lab = spawnLab(["--machines", "2", "--log-format", "pretty"], place.env, place.dir);
      await lab.waitFor(/all 2 machines ready/, 180_000);
      const after = (await createClient(AdminMachineService, as(apiUrl(), (await readFile(join(place.dataDir, "admin-token"), "utf8")).trim())).list({ partition: "lab" })).machines;
      expect(after).toHaveLength(2);
      const removed = before.filter((id) => !after.some((m) => m.id === id));
      expect(removed).toHaveLength(1);
      expect(lab.stderr()).toContain(`machine ${removed[0]} (beyond --machines) was free and is removed from the control plane`);
      expect(lab.stderr()).toContain("operator admin token: data/admin-token (from an earlier start; never printed)");
      const out = lab.stdout();
      expect(out).toContain("metal-lab listening on");
      expect(out.split("\n").filter((l) => l.startsWith("{"))).toEqual([]);
    },
    scaled(200_000),
  );

  it(
    "stops with one line when the admin token it keeps was revoked, and starts with --reset-admin-token",
    async () => {
      const file = join(place.dataDir, "admin-token");
      const token = (await readFile(file, "utf8")).trim();
      const me = (await createClient(UserService, as(apiUrl(), token)).get({})).user!.token!;
      await createClient(AdminTokenService, as(apiUrl(), token)).revoke({ id: me.id });
      expect(await lab.stop()).toBe(0);

      const refused = spawnLab(["--machines", "2"], place.env, place.dir);
      expect(await refused.exited).toBe(1);
      const last = refused.stderr().trim().split("\n").at(-1)!;
      expect(last).toMatch(/^metal-lab: the admin token in .*admin-token does not work \(.*revoked.*\); .*--reset-admin-token.*\(metal-lab takes --reset-admin-token too\)$/);
      expect(refused.stderr()).not.toMatch(/\n\s+at /);

      lab = spawnLab(["--machines", "2", "--reset-admin-token"], place.env, place.dir);
      await lab.waitFor(/all 2 machines ready/, 180_000);
      expect(lab.stderr()).toContain("operator admin token: data/admin-token (issued anew, earlier ones revoked; never printed)");
      const renewed = (await readFile(file, "utf8")).trim();
      expect(renewed).not.toBe(token);
      expect((await createClient(UserService, as(apiUrl(), renewed)).get({})).user!.token!.roles!.adminRole).toBe(AdminRole.ADMIN);
    },
    scaled(300_000),
  );

  it(
    "logs for a person on a terminal: no JSON lines, the progress and banner beside them",
    async () => {
      expect(await lab.stop()).toBe(0);
      // script(1) gives it a terminal as stdout and stderr, as `npm start` in a shell has.
      const term = spawn("script", ["-qefc", `${process.execPath} ${join(REPO, "bin/metal-lab.js")} --machines 2`, "/dev/null"], {
        cwd: place.dir,
        env: place.env,
        detached: true,
        stdio: ["pipe", "pipe", "pipe"],
      });
      let out = "";
      term.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d.replace(/\r/g, "")));
      const exited = new Promise((r) => term.once("exit", r));
      try {
        await eventually("all 2 machines ready on the terminal", () => /all 2 machines ready/.test(out), 180_000);
      } finally {
        process.kill(-term.pid!, "SIGINT");
        await exited;
      }
      expect(out).toMatch(/INFO.*metal-lab listening on http:\/\/127\.0\.0\.1:\d+/);
      expect(out).toContain("metal-lab is up: API");
      expect(out.split("\n").filter((l) => l.trimStart().startsWith('{"level"'))).toEqual([]);
    },
    scaled(200_000),
  );
});

async function allThreeWaiting(): Promise<boolean> {
  const token = (await readFile(join(place.dataDir, "admin-token"), "utf8")).trim();
  const machines = (await createClient(AdminMachineService, as(apiUrl(), token)).list({ partition: "lab" })).machines;
  return machines.length === 3 && machines.every((m) => !m.allocation && m.waiting && m.events?.log[0]?.type === ProvisioningEventType.WAITING);
}

function apiUrl(): string {
  return /metal-lab is up: API (http:\/\/\S+),/.exec(lab.stderr())![1]!;
}

async function labContexts(): Promise<Contexts> {
  return parse(await readFile(join(place.dataDir, "metalctl", "config.yaml"), "utf8")) as Contexts;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
