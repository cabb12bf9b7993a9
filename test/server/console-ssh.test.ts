import { execFileSync, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ssh2 from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SimBmcs, type SimMachineBmc } from "../../edge/sim/bmc.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole, TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { createApp } from "../../server/app.js";
import { type ConsoleMachine, decideConsoleAccess, keyBlob } from "../../server/console/access.js";
import { type ConsoleServer, NO_KEY_HINT } from "../../server/console/ssh-server.js";
import { AdminRole, noRoles, type Principal, type Roles } from "../../server/domain/roles.js";
import { createLogger } from "../../server/logger.js";
import { cli } from "../cli/run-cli.js";
import { eventually } from "../e2e/lab-harness.js";
import { runBmcAgent } from "../helpers/bmc-agent.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { launchServer, type TestServer } from "../helpers/server-launch.js";
import { type ConsoleTarget, generateKey, refusedConsole, type SshOptions, sshConsole, writeKnownHosts } from "../helpers/ssh-client.js";

let server: TestServer;
let config: Awaited<ReturnType<typeof launchServer>>["config"];
let stopServer: () => Promise<void>;
let fixture: PartitionFixture;
let dir: string;
let leaseFile: string;
let stopAgent: () => Promise<void>;
const sims = new SimBmcs();

/** Key files made by the real ssh-keygen, as a user's would be. */
const keys = { owner: "", stranger: "" };
const pub = { owner: "", stranger: "" };
let knownHosts: string;
const tokens = { owner: "", tenantOwner: "", otherProject: "", admin: "" };

/** The test server's console (or another one on the same database, with its own known_hosts). */
const target = (c: ConsoleServer = server.console!, hosts = knownHosts): ConsoleTarget => ({ host: "127.0.0.1", port: c.port, knownHosts: hosts, home: dir });
const ssh = (machineId: string, o: SshOptions, t = target()) => sshConsole(t, machineId, o);
const refused = (machineId: string, o: SshOptions, t = target()) => refusedConsole(t, machineId, o);

let ip = 10;
/** A machine booted by the fixture (playing metal-hammer) whose simulated BMC metal-bmc has reported. */
async function machineWithConsole(): Promise<{ id: string; sim: SimMachineBmc }> {
  const booted = await fixture.bootMachine("r1");
  const n = ip++;
  const sim = sims.add({ uuid: booted.id, ip: `10.3.0.${n}`, mac: `aa:bb:cc:00:03:${n.toString(16).padStart(2, "0")}` });
  await sims.writeLeases(leaseFile);
  const admin = server.client(AdminMachineService, server.adminToken);
  await eventually(`the BMC report of ${booted.id}`, async () => (await admin.get({ id: booted.id })).machine?.bmc?.address);
  return { id: booted.id, sim };
}

async function allocated(): Promise<{ id: string; sim: SimMachineBmc }> {
  const m = await machineWithConsole();
  const { machine } = await server.client(MachineService, tokens.owner).create({
    project: "pb",
    partition: "p1",
    size: "s1",
    image: "debian-12",
    name: `console-${m.id.slice(0, 4)}`,
    networks: [fixture.primary.pb],
    sshKeys: [pub.owner],
  });
  // The allocation picks any waiting machine; the fixture boots one at a time, so it is this one.
  expect(machine?.id).toBe(m.id);
  return m;
}

beforeAll(async () => {
  ({ server, config, stop: stopServer } = await launchServer({ console: true, consolePollMs: 200 }));
  fixture = await setUpPartition(server);
  dir = await mkdtemp(join(tmpdir(), "console-ssh-test-"));
  leaseFile = join(dir, "dhcpd.leases");
  for (const who of ["owner", "stranger"] as const) ({ file: keys[who], pub: pub[who] } = await generateKey(dir, who));
  knownHosts = await writeKnownHosts(join(dir, "known_hosts"), "127.0.0.1", server.console!.port, server.console!.hostKey);

  const admin = server.client(AdminTokens, server.adminToken);
  tokens.admin = server.adminToken;
  tokens.owner = (await admin.create({ subject: "olga", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
  tokens.tenantOwner = (await admin.create({ subject: "tom", roles: { tenantRoles: { t: TenantRole.VIEWER } } })).secret;
  tokens.otherProject = (await admin.create({ subject: "paula", roles: { projectRoles: { pa: ProjectRole.OWNER } } })).secret;

  stopAgent = runBmcAgent({ url: server.url, token: fixture.infraToken, agent: "bmc-console-ssh", dir, leaseFile, sims }).stop;
  await eventually("metal-bmc offers relays", () => server.app.relayBroker.agentsOf("p1").length > 0);
});

afterAll(async () => {
  fixture?.stopAll();
  await stopAgent?.();
  await stopServer?.();
  await rm(dir, { recursive: true, force: true });
});

describe("metal-console over SSH, driven by the real OpenSSH client", () => {
  let owned: { id: string; sim: SimMachineBmc };
  let free: { id: string; sim: SimMachineBmc };

  beforeAll(async () => {
    owned = await allocated();
    free = await machineWithConsole();
  });

  it("the user's terminal size reaches the machine's console (pty-req), and typing works through a real terminal", async () => {
    const s = ssh(owned.id, { key: keys.owner, token: tokens.owner, terminal: { columns: 132, rows: 43 } });
    await s.see(`connected to ${owned.id}`);
    await eventually("the window size", () => owned.sim.serial.windowSizes.some((w) => w.columns === 132 && w.rows === 43));
    s.type("uname\r");
    await s.see("\r\nLinux\r\n");
    s.type("\r~.");
    await s.exited;
    await eventually("the relay closes", () => server.console!.sessions === 0);
  });

  it("window-change requests are forwarded to the machine's console as resizes", async () => {
    const client = new ssh2.Client();
    const privateKey = await readFile(keys.owner, "utf8");
    await new Promise<void>((resolve, reject) => {
      client.once("ready", resolve).once("error", reject);
      client.connect({ host: "127.0.0.1", port: server.console!.port, username: owned.id, privateKey, hostVerifier: (key: Buffer) => key.toString("base64") === server.console!.hostKey.split(" ")[1] });
    });
    try {
      const stream = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
        client.shell({ cols: 80, rows: 24, term: "xterm" }, { env: { LC_METAL_TOKEN: tokens.owner } }, (err, ch) => (err ? reject(err) : resolve(ch))),
      );
      let out = "";
      stream.on("data", (d: Buffer) => (out += d.toString()));
      await eventually("the banner", () => out.includes("connected to"));
      stream.setWindow(50, 160, 0, 0);
      await eventually("both sizes", () => JSON.stringify(owned.sim.serial.windowSizes).includes('{"columns":160,"rows":50}'));
      expect(owned.sim.serial.windowSizes.slice(-2)).toEqual([
        { columns: 80, rows: 24 },
        { columns: 160, rows: 50 },
      ]);
      stream.end();
    } finally {
      client.end();
    }
    await eventually("the relay closes", () => server.console!.sessions === 0);
  });

  it("a tenant member (tenant role) may open a machine of the tenant's project", async () => {
    const s = ssh(owned.id, { key: keys.owner, token: tokens.tenantOwner });
    await s.see(`connected to ${owned.id}`);
    s.kill();
    await s.exited;
  });

  // The refusals of issue 7's done-when (wrong key, no token, another project, a free machine) run in the lab: test/e2e/lab-console.test.ts.
  it("refuses a token that does not verify, and tells an unknown machine apart only to an operator admin", async () => {
    const bogus = await refused(owned.id, { key: keys.owner, token: "not-a-token" });
    expect(bogus).toContain("metal-console: the token in LC_METAL_TOKEN was refused: the token is not valid");
    const unknown = randomUUID();
    // Everybody else gets the words every outsider gets (test/security/existence-oracles.test.ts).
    expect(await refused(unknown, { key: keys.owner, token: tokens.owner })).toContain(`machine "${unknown}" has no console for the SSH key you authenticated with`);
    expect(await refused(unknown, { key: keys.owner, token: tokens.admin })).toContain(`machine "${unknown}" not found`);
    expect(server.console!.sessions).toBe(0);
    expect(owned.sim.serial.attachments).toBe(0);
  });

  it("several consoles at once, each with its own machine's output", async () => {
    const a = ssh(owned.id, { key: keys.owner, token: tokens.owner });
    const b = ssh(free.id, { key: keys.owner, token: tokens.admin });
    const c = ssh(owned.id, { key: keys.owner, token: tokens.tenantOwner });
    await Promise.all([a.see("connected to"), b.see("connected to"), c.see("connected to")]);
    expect(server.console!.sessions).toBe(3);
    a.type("echo from-a\r");
    b.type("echo from-b\r");
    await Promise.all([a.see("\r\nfrom-a\r\n"), b.see("\r\nfrom-b\r\n")]);
    expect(b.seen.out).not.toContain("from-a");
    // The simulated BMCs replay the boot log their machines printed before any allocation: an operator admin
    // on the free machine sees it; on the allocated one it predates the allocation and is withheld (it would
    // have come before the live answer).
    expect(b.seen.out).toContain("Welcome to metal sim");
    expect(a.seen.out).not.toContain("Welcome to metal sim");
    for (const s of [a, b, c]) s.kill();
    await Promise.all([a.exited, b.exited, c.exited]);
    await eventually("all closed", () => server.console!.sessions === 0);
  });

  it("an idle console is closed with a message", async () => {
    const idle = await server.app.startConsole("127.0.0.1:0", { idleTimeoutMs: 700 });
    const hosts = await writeKnownHosts(join(dir, "known_hosts_idle"), "127.0.0.1", idle.port, idle.hostKey);
    const s = ssh(owned.id, { key: keys.owner, token: tokens.owner }, target(idle, hosts));
    await s.see("connected to");
    expect(await s.exited).toBe(1);
    expect(s.seen.out).toContain("metal-console: no input or output for 700ms; closing the console");
    await idle.close();
  });

  it("metalctl machine console runs the user's ssh with the console address, -t, -i and the token in LC_METAL_TOKEN", async () => {
    // An `ssh` first on PATH that records how metalctl called it, then runs the real client (batch mode, the test's known_hosts).
    const bin = join(dir, "bin");
    await mkdir(bin, { recursive: true });
    const real = execFileSync("sh", ["-c", "command -v ssh"], { encoding: "utf8" }).trim();
    await writeFile(
      join(bin, "ssh"),
      `#!/bin/sh\nprintf '%s\\n' "$@" > '${dir}/ssh-args'\nprintf '%s' "$LC_METAL_TOKEN" > '${dir}/ssh-token'\n` +
        `exec '${real}' -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o 'UserKnownHostsFile=${knownHosts}' -o StrictHostKeyChecking=yes -o LogLevel=ERROR "$@" < /dev/null > '${dir}/ssh-out' 2>&1\n`,
    );
    await chmod(join(bin, "ssh"), 0o755);
    const metalctl = cli({ PATH: `${bin}:${process.env.PATH}` });
    // Another project's token: the refusal names its subject, so the token demonstrably arrived.
    const r = await metalctl.run(["machine", "console", owned.id, "-i", keys.owner, "--console-host", `127.0.0.1:${server.console!.port}`, "--api-url", server.url, "--token", tokens.otherProject]);
    expect(r.code).toBe(1);
    expect(await readFile(join(dir, "ssh-out"), "utf8")).toContain('metal-console: the token of "paula" is not one of a member of project "pb"');
    expect((await readFile(join(dir, "ssh-args"), "utf8")).trim().split("\n")).toEqual(["-t", "-p", String(server.console!.port), "-o", "SendEnv=LC_METAL_TOKEN", "-i", keys.owner, `${owned.id}@127.0.0.1`]);
    expect(await readFile(join(dir, "ssh-token"), "utf8")).toBe(tokens.otherProject);
    // The token never shows on the command line.
    expect(await readFile(join(dir, "ssh-args"), "utf8")).not.toContain(tokens.otherProject);

    // Without --console-host: the API URL's host on port 5222.
    const d = await metalctl.run(["machine", "console", owned.id, "--api-url", "http://metal.example:8080", "--token", tokens.owner]);
    expect(d.code).not.toBe(0);
    expect((await readFile(join(dir, "ssh-args"), "utf8")).trim().split("\n")).toEqual(["-t", "-p", "5222", "-o", "SendEnv=LC_METAL_TOKEN", `${owned.id}@metal.example`]);

    const missing = await cli({ PATH: join(dir, "empty") }).run(["machine", "console", owned.id, "--api-url", server.url, "--token", tokens.owner]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("ssh not found on PATH");
  });

  it("the host key is the same after a restart on the same database", async () => {
    const app2 = await createApp(config, createLogger("silent", { pretty: false }));
    try {
      const c2 = await app2.startConsole("127.0.0.1:0");
      expect(c2.hostKey).toBe(server.console!.hostKey);
      const hosts = await writeKnownHosts(join(dir, "known_hosts_restart"), "127.0.0.1", c2.port, server.console!.hostKey);
      // StrictHostKeyChecking passes (ssh would exit 255 otherwise) and the new server answers; it has no metal-bmc, so the console cannot open.
      const err = await refused(free.id, { key: keys.owner, token: tokens.admin }, target(c2, hosts));
      expect(err).toContain(`cannot open the console of machine "${free.id}": no metal-bmc of partition "p1" is connected to this replica`);
    } finally {
      await app2.close();
    }
  });

  it("an OpenSSH client without any SSH key is told how to get one (keyboard-interactive instructions), then refused", async () => {
    // No key to offer (ssh reads the account's ~/.ssh whatever HOME says, so public keys are switched off);
    // not in batch mode, which skips keyboard-interactive.
    const home = await mkdtemp(join(dir, "no-keys-"));
    const args = [
      "-F",
      "/dev/null",
      "-o",
      "PubkeyAuthentication=no",
      "-o",
      "IdentityAgent=none",
      "-o",
      `UserKnownHostsFile=${knownHosts}`,
      "-o",
      "StrictHostKeyChecking=yes",
      "-p",
      String(server.console!.port),
      `${owned.id}@127.0.0.1`,
    ];
    const child = spawn("ssh", args, { env: { PATH: process.env.PATH, HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(err).toContain(NO_KEY_HINT);
    expect(err).toContain("Permission denied");
    expect(code).toBe(255);
  });

  it("freeing the machine ends its open console at once, not at the next periodic re-check", async () => {
    // A console server of the same app that would re-check only after an hour: only the wake-up can end the session.
    const slow = await server.app.startConsole("127.0.0.1:0", { pollMs: 3_600_000 });
    const hosts = await writeKnownHosts(join(dir, "known_hosts_slow"), "127.0.0.1", slow.port, slow.hostKey);
    const m = await machineWithConsole();
    await server.client(MachineService, tokens.owner).create({
      project: "pb",
      partition: "p1",
      size: "s1",
      image: "debian-12",
      name: "console-freed",
      networks: [fixture.primary.pb],
      sshKeys: [pub.owner],
      machineId: m.id,
    });
    const s = ssh(m.id, { key: keys.owner, token: tokens.owner }, target(slow, hosts));
    await s.see(`connected to ${m.id}`);
    await server.client(MachineService, tokens.owner).delete({ id: m.id, project: "pb" });
    await s.see(`metal-console: machine "${m.id}" was freed; closing the console`);
    expect(await s.exited).toBe(1);
  });
});

describe("decideConsoleAccess (the rules without SSH)", () => {
  const ownerKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICeWsza73NKWmCYpxuDK0edRALsP3FgiTXHZjEcvxpkI owner@laptop";
  const blob = keyBlob(ownerKey)!;
  const principal = (roles: Partial<Roles>): Principal => ({ tokenId: "t", subject: "someone", expiresAt: new Date(Date.now() + 60_000), roles: { ...noRoles(), ...roles } });
  const m = (allocation: ConsoleMachine["allocation"]): ConsoleMachine => ({ id: "m1", partition: "p1", allocation });
  const allocatedAt = new Date("2026-01-02T03:04:05.678Z");
  const alloc = (role: "machine" | "firewall") => ({ uuid: "a1", project: "pb", role, sshKeys: [ownerKey], createdAt: allocatedAt });
  const viewer = { kind: "valid" as const, principal: principal({ projectRoles: { pb: ProjectRole.VIEWER } }) };

  it("a project viewer with one of the allocation's keys gets in, the key compared without its comment", () => {
    expect(decideConsoleAccess(m(alloc("machine")), "m1", blob, viewer)).toEqual({ allow: true, admin: false, partition: "p1", allocationUuid: "a1", outputSince: allocatedAt });
  });
  it("a tenant role counts for the tenant's projects only", () => {
    const tenant = { kind: "valid" as const, principal: principal({ tenantRoles: { t: TenantRole.VIEWER } }) };
    expect(decideConsoleAccess(m(alloc("machine")), "m1", blob, tenant, "t").allow).toBe(true);
    expect(decideConsoleAccess(m(alloc("machine")), "m1", blob, tenant, "other").allow).toBe(false);
  });
  it("firewalls and free machines are for operator admins; an operator viewer is not enough", () => {
    expect(decideConsoleAccess(m(alloc("firewall")), "m1", blob, viewer)).toMatchObject({ allow: false, message: expect.stringContaining("is a firewall") });
    const admin = { kind: "valid" as const, principal: principal({ adminRole: AdminRole.ADMIN }) };
    expect(decideConsoleAccess(m(alloc("firewall")), "m1", "other", admin)).toMatchObject({ allow: true, admin: true });
    // An earlier tenant's output is for nobody once the machine is allocated again; a free machine's is for operator admins.
    expect(decideConsoleAccess(m(alloc("machine")), "m1", "other", admin)).toMatchObject({ allow: true, admin: true, outputSince: allocatedAt });
    const opViewer = { kind: "valid" as const, principal: principal({ adminRole: AdminRole.VIEWER }) };
    expect(decideConsoleAccess(m(null), "m1", blob, opViewer)).toMatchObject({ allow: false, message: expect.stringContaining('machine "m1" has no console for the SSH key') });
    expect(decideConsoleAccess(m(null), "m1", blob, admin)).toMatchObject({ allow: true, admin: true, allocationUuid: undefined, outputSince: undefined });
  });
  it("a machine without a partition has no console; only an operator admin is told why", () => {
    const admin = { kind: "valid" as const, principal: principal({ adminRole: AdminRole.ADMIN }) };
    expect(decideConsoleAccess({ id: "m1", partition: null, allocation: null }, "m1", blob, admin)).toMatchObject({ allow: false, message: expect.stringContaining("no partition") });
    expect(decideConsoleAccess({ id: "m1", partition: null, allocation: null }, "m1", blob, { kind: "none" })).toMatchObject({
      allow: false,
      message: expect.stringContaining("has no console for the SSH key"),
    });
  });
  it("outsiders (a key that is not one of the allocation's) get one answer for unknown, free, another's and a firewall's machine", () => {
    const strangerBlob = keyBlob("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDBqpMUcgJVn6XKTiKQQIB+fGBNcNFSi6EHTZubtPjUF stranger@laptop")!;
    const answers = [undefined, m(null), m(alloc("machine")), m(alloc("firewall"))].map((machine) => decideConsoleAccess(machine, "m1", strangerBlob, viewer));
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(answers[0]).toMatchObject({ allow: false, message: expect.stringContaining('machine "m1" has no console for the SSH key you authenticated with (SHA256:') });
  });
});
