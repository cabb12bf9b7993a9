import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import type { DescService } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import type { LabMachine } from "../../edge/lab/lab.js";
import { LAB } from "../../edge/lab/seed.js";
import { SimBmcs, type SimMachineBmc } from "../../edge/sim/bmc.js";
import { SimMachine } from "../../edge/sim/machine.js";
import { ProjectService as MdProjects } from "../../gen/masterdata/v1/project_pb.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService } from "../../gen/metal/api/v1/network_pb.js";
import { consoleHostKeyRepository } from "../../server/repositories/console-host-key-repository.js";
import { eventually, type LabUnderTest, startLabUnderTest } from "../e2e/lab-harness.js";
import { runBmcAgent } from "../helpers/bmc-agent.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { launchServer, type TestServer } from "../helpers/server-launch.js";
import { type ConsoleTarget, generateKey, splitAddress, sshConsole, writeKnownHosts } from "../helpers/ssh-client.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * Issue 12, item 1 (the console part): a console never shows output from
 * before the current allocation began. In the lab, with the real OpenSSH
 * client: tenant A types into the machine's serial console, frees the
 * machine; once it is reclaimed and waiting again tenant B gets it, and B's
 * console (whose scrollback the simulated BMC replays) shows nothing of A's.
 * And the control plane's own cut: a BMC that does replay a previous
 * tenant's session (a console server keeping its log across allocations) gets
 * it withheld, because every byte carries the time it was printed.
 */

const SECRET = "tenant-a-secret-7f3c";

describe("a new boot starts a new console log (the simulated machine)", () => {
  it("what a boot printed is not in the scrollback after a reset, while an open attachment still sees the new boot", () => {
    const m = new SimMachine({ uuid: "00000000-0000-4000-8000-0000000000aa", nics: [{ name: "eth0", mac: "0c:c4:7a:00:00:aa", neighbors: [] }] });
    m.powerOn("pxe");
    m.console.write(`${SECRET}\n`);
    expect(m.consoleLog).toContain("no login in the discovery image");
    let live = "";
    m.console.on("data", (d: Buffer) => (live += d.toString()));
    m.reset();
    expect(m.consoleLog).toMatch(/^\r\nSimBIOS 1\.0 /);
    expect(m.consoleLog).not.toContain("no login in the discovery image");
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        expect(live).toContain("SimBIOS 1.0");
        resolve();
      }),
    );
  });
});

/**
 * A machine's serial line whose console log is never cut: what it printed
 * stays in the log its BMC replays, whoever had the machine then. Typed lines
 * are answered, so live output can be told from the replay.
 */
function neverForgettingLine() {
  const line = {
    log: "",
    stream: new Duplex({
      read() {},
      write(chunk: Buffer, _enc, done) {
        for (const typed of chunk
          .toString()
          .split(/\r\n?|\n/)
          .slice(0, -1))
          line.print(`\r\nheard: ${typed}\r\n`);
        done();
      },
    }),
    print(text: string) {
      line.log += text;
      line.stream.push(text);
    },
  };
  return line;
}

describe("a BMC that replays a previous tenant's session: the control plane withholds it (issue 12, item 1)", () => {
  let server: TestServer;
  let stopServer: () => Promise<void>;
  let fixture: PartitionFixture;
  let dir: string;
  let stopAgent: () => Promise<void>;
  let target: ConsoleTarget;
  let owner = { file: "", pub: "" };
  let ownerToken = "";
  const sims = new SimBmcs();

  beforeAll(async () => {
    ({ server, stop: stopServer } = await launchServer({ console: true, consolePollMs: 200 }));
    fixture = await setUpPartition(server);
    dir = await mkdtemp(join(tmpdir(), "console-scrollback-"));
    owner = await generateKey(dir, "owner");
    ownerToken = (await server.client(AdminTokens, server.adminToken).create({ subject: "olga", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
    target = { host: "127.0.0.1", port: server.console!.port, knownHosts: await writeKnownHosts(join(dir, "known_hosts"), "127.0.0.1", server.console!.port, server.console!.hostKey), home: dir };
    const leaseFile = join(dir, "dhcpd.leases");
    stopAgent = runBmcAgent({ url: server.url, token: fixture.infraToken, agent: "bmc-scrollback", dir, leaseFile, sims }).stop;
    await eventually("metal-bmc offers relays", () => server.app.relayBroker.agentsOf("p1").length > 0);
  });

  afterAll(async () => {
    fixture?.stopAll();
    await stopAgent?.();
    await stopServer?.();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A waiting machine whose BMC metal-bmc reported, on the given line. */
  async function machineOn(line: ReturnType<typeof neverForgettingLine>): Promise<SimMachineBmc> {
    const booted = await fixture.bootMachine("r1");
    const sim = sims.add({ uuid: booted.id, ip: "10.4.0.10", mac: "aa:bb:cc:00:04:10" }, { stream: line.stream, log: () => line.log });
    await sims.writeLeases(join(dir, "dhcpd.leases"));
    const admin = server.client(AdminMachineService, server.adminToken);
    await eventually(`the BMC report of ${booted.id}`, async () => (await admin.get({ id: booted.id })).machine?.bmc?.address);
    return sim;
  }

  it(
    "the new tenant's console shows live output and nothing the BMC replays from before the allocation; an operator admin sees it only while the machine is free",
    async () => {
      const line = neverForgettingLine();
      // Printed before the BMC listened: its time is unknown to the BMC.
      line.print("SimBIOS 1.0\r\nprevious-tenant login: root\r\n");
      const sim = await machineOn(line);
      // Printed while the BMC listened, before the allocation: the previous tenant's session.
      line.print(`root@previous-tenant:~# echo ${SECRET}\r\n${SECRET}\r\n`);

      const before = sshConsole(target, sim.uuid, { key: owner.file, token: server.adminToken });
      await before.see(SECRET);
      expect(before.seen.out).toContain("previous-tenant login");
      before.kill();
      await before.ends();

      const { machine } = await server.client(MachineService, ownerToken).create({
        project: "pb",
        partition: "p1",
        size: "s1",
        image: "debian-12",
        name: "scrollback",
        networks: [fixture.primary.pb],
        sshKeys: [owner.pub],
      });
      expect(machine?.id).toBe(sim.uuid);
      line.print("install: partitioning /dev/sda\r\n");

      const s = sshConsole(target, sim.uuid, { key: owner.file, token: ownerToken });
      await s.see(`connected to ${sim.uuid}`);
      await s.see("install: partitioning /dev/sda");
      s.type("whoami\r");
      await s.see("heard: whoami");
      expect(s.seen.out).not.toContain(SECRET);
      expect(s.seen.out).not.toContain("previous-tenant");
      s.kill();
      await s.ends();

      // Operator admins too: the earlier session belongs to nobody once the machine is allocated again.
      const admin = sshConsole(target, sim.uuid, { key: owner.file, token: server.adminToken });
      await admin.see(`connected to ${sim.uuid}`);
      admin.type("hostname\r");
      await admin.see("heard: hostname");
      expect(admin.seen.out).toContain("install: partitioning /dev/sda");
      expect(admin.seen.out).not.toContain(SECRET);
      expect(admin.seen.out).not.toContain("previous-tenant");
      admin.kill();
      await admin.ends();
    },
    scaled(90_000),
  );
});

describe("the console of a re-allocated machine in the lab (issue 12, item 1)", () => {
  let t: LabUnderTest;
  let target: ConsoleTarget;
  const keys = { a: { file: "", pub: "" }, b: { file: "", pub: "" } };
  const tokens = { a: "", b: "" };
  let networkB = "";

  const as = <S extends DescService>(service: S, token: string) => createClient(service, createTransport({ baseUrl: t.lab.apiUrl, protocol: "connect", binary: true, token }));

  beforeAll(async () => {
    t = await startLabUnderTest(1);
    await eventually("the machine waits", async () => (await t.admin(AdminMachineService).list({ partition: LAB.partition })).machines.some((m) => m.waiting), 30_000);
    for (const who of ["a", "b"] as const) keys[who] = await generateKey(t.dir, `tenant-${who}`);
    const hostKey = await consoleHostKeyRepository.get(t.lab.app!.db, "default");
    const { host, port } = splitAddress(t.lab.consoleAddress);
    target = { host, port, knownHosts: await writeKnownHosts(`${t.dir}/known_hosts`, host, port, hostKey!.publicKey), home: t.dir };
    await t.admin(MdProjects).create({ project: { meta: { id: "project-b" }, name: "project b", tenantId: LAB.tenant } });
    networkB = (await t.admin(NetworkService).create({ project: "project-b", partition: LAB.partition })).network!.id;
    tokens.a = (await t.admin(AdminTokens).create({ subject: "alice", roles: { projectRoles: { [LAB.project]: ProjectRole.EDITOR } } })).secret;
    tokens.b = (await t.admin(AdminTokens).create({ subject: "bob", roles: { projectRoles: { "project-b": ProjectRole.EDITOR } } })).secret;
  }, scaled(90_000));

  afterAll(async () => {
    await t?.dispose();
  });

  /** Allocates the lab's one machine for a project and waits until its OS is up. */
  async function allocate(token: string, project: string, network: string, hostname: string, sshKey: string): Promise<LabMachine> {
    const { machine } = await as(MachineService, token).create({ project, partition: LAB.partition, size: LAB.size, image: "debian-12", hostname, networks: [network], sshKeys: [sshKey] });
    const m = t.lab.machines.find((x) => x.uuid === machine!.id)!;
    await eventually(`${hostname} to phone home`, async () => (await t.events(m.uuid))[0] === T.PHONED_HOME, 45_000);
    return m;
  }

  it(
    "B's console shows nothing that A's session printed",
    async () => {
      const m = await allocate(tokens.a, LAB.project, t.lab.projectNetwork, "web-a", keys.a.pub);
      const a = sshConsole(target, m.uuid, { key: keys.a.file, token: tokens.a });
      await a.see("web-a login: ");
      a.type(`${SECRET}\r`);
      await a.see(`${SECRET}: command not found`);
      a.type("\r~.");
      await a.ends();

      // A frees; the machine is reset into PXE, wiped, and waits again.
      await as(MachineService, tokens.a).delete({ id: m.uuid, project: LAB.project });
      await eventually("the machine waits again", async () => {
        const now = await t.machine(m.uuid);
        return !now.allocation && now.waiting && (await t.events(m.uuid))[0] === T.WAITING;
      });

      const again = await allocate(tokens.b, "project-b", networkB, "web-b", keys.b.pub);
      expect(again.uuid).toBe(m.uuid);
      const b = sshConsole(target, m.uuid, { key: keys.b.file, token: tokens.b });
      // The scrollback up to B's login prompt: the reclaim's boot, B's installation, B's OS.
      await b.see(`connected to ${m.uuid}`);
      await b.see("web-b login: ");
      b.type("hostname\r");
      await b.see("hostname\r\nweb-b\r\n");
      expect(b.seen.out).not.toContain(SECRET);
      expect(b.seen.out).not.toContain("web-a");
      b.kill();
      await b.ends();
    },
    scaled(180_000),
  );
});
