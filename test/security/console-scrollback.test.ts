import type { DescService } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProjectService as MdProjects } from "../../gen/masterdata/v1/project_pb.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService } from "../../gen/metal/api/v1/network_pb.js";
import { bearer } from "../../edge/common/client.js";
import type { LabMachine } from "../../edge/lab/lab.js";
import { LAB } from "../../edge/lab/seed.js";
import { SimMachine } from "../../edge/sim/machine.js";
import { consoleHostKeyRepository } from "../../server/repositories/console-host-key-repository.js";
import { generateKey, splitAddress, sshConsole, writeKnownHosts, type ConsoleTarget } from "../helpers/ssh-client.js";
import { eventually, startLabUnderTest, type LabUnderTest } from "../e2e/lab-harness.js";

/**
 * Issue 12, item 1 (the console part): a console never shows output from
 * before the current allocation began. In the lab, with the real OpenSSH
 * client: tenant A types into the machine's serial console, frees the
 * machine; once it is reclaimed and waiting again tenant B gets it, and B's
 * console (whose scrollback the simulated BMC replays) shows nothing of A's.
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

describe("the console of a re-allocated machine in the lab (issue 12, item 1)", () => {
  let t: LabUnderTest;
  let target: ConsoleTarget;
  const keys = { a: { file: "", pub: "" }, b: { file: "", pub: "" } };
  const tokens = { a: "", b: "" };
  let networkB = "";

  const as = <S extends DescService>(service: S, token: string) =>
    createClient(service, createConnectTransport({ baseUrl: t.lab.apiUrl, httpVersion: "1.1", interceptors: [bearer(token)] }));

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
  }, 90_000);

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

  it("B's console shows nothing that A's session printed", async () => {
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
    }, 45_000);

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
  }, 180_000);
});
