import type { DescService } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import type { LabMachine } from "../../edge/lab/lab.js";
import { LAB } from "../../edge/lab/seed.js";
import { ProjectService as MdProjects } from "../../gen/masterdata/v1/project_pb.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { TokenService } from "../../gen/metal/api/v1/token_pb.js";
import { consoleHostKeyRepository } from "../../server/repositories/console-host-key-repository.js";
import { type ConsoleTarget, generateKey, refusedConsole, type SshOptions, splitAddress, sshConsole, writeKnownHosts } from "../helpers/ssh-client.js";
import { scaled } from "../helpers/timeouts.js";
import { eventually, type LabUnderTest, startLabUnderTest } from "./lab-harness.js";

/**
 * Issue 7's done-when, in the lab: the real OpenSSH client into the lab's
 * metal-console, through the lab's metal-bmc to the simulated machines'
 * serial consoles. Four machines: one the tenant allocates, the others free.
 */
let t: LabUnderTest;
let target: ConsoleTarget;
const keys = { owner: { file: "", pub: "" }, stranger: { file: "", pub: "" } };
/** member: a project member's token (allocates, opens the console, frees); other: a token of another project. */
const tokens = { member: "", other: "" };
let owned: LabMachine;
let free: LabMachine;

/** A client with the given bearer token, as a tenant's metalctl would be. */
const as = <S extends DescService>(service: S, token: string) => createClient(service, createTransport({ baseUrl: t.lab.apiUrl, protocol: "connect", binary: true, token }));

const ssh = (machine: LabMachine, o: SshOptions) => sshConsole(target, machine.uuid, o);
const refused = (machine: LabMachine, o: SshOptions) => refusedConsole(target, machine.uuid, o);

/** A token of LAB.project's member `subject`, with its id (to revoke it). */
async function memberToken(subject: string): Promise<{ id: string; secret: string }> {
  const r = await t.admin(AdminTokens).create({ subject, description: "lab console test", roles: { projectRoles: { [LAB.project]: ProjectRole.EDITOR } } });
  return { id: r.token!.id, secret: r.secret };
}

beforeAll(async () => {
  t = await startLabUnderTest(4);
  await eventually("4 waiting machines", async () => {
    const all = (await t.admin(AdminMachineService).list({ partition: LAB.partition })).machines;
    return all.length === 4 && all.every((m) => m.waiting && m.events?.log[0]?.type === T.WAITING);
  });

  for (const who of ["owner", "stranger"] as const) keys[who] = await generateKey(t.dir, who);
  // known_hosts from the host key as the control plane persisted it, not from what the server happens to present.
  const hostKey = await consoleHostKeyRepository.get(t.lab.app!.db, "default");
  expect(hostKey?.publicKey).toMatch(/^ssh-ed25519 /);
  const { host, port } = splitAddress(t.lab.consoleAddress);
  target = { host, port, knownHosts: await writeKnownHosts(`${t.dir}/known_hosts`, host, port, hostKey!.publicKey), home: t.dir };

  tokens.member = (await memberToken("mia")).secret;
  // A real second project of the same tenant: its owner is a member of the tenant, not of the machine's project.
  await t.admin(MdProjects).create({ project: { meta: { id: "other-project" }, name: "other project", tenantId: LAB.tenant } });
  tokens.other = (await t.admin(AdminTokens).create({ subject: "otto", roles: { projectRoles: { "other-project": ProjectRole.OWNER } } })).secret;

  // The tenant allocates a waiting machine with the owner's public key, with the member's token.
  const { machine } = await as(MachineService, tokens.member).create({
    project: LAB.project,
    partition: LAB.partition,
    size: LAB.size,
    image: "debian-12",
    hostname: "web1",
    networks: [t.lab.projectNetwork],
    sshKeys: [keys.owner.pub],
  });
  owned = t.lab.machines.find((m) => m.uuid === machine!.id)!;
  free = t.lab.machines.find((m) => m !== owned)!;
  // Installed and booted: the console shows the installed OS's login prompt and it answers commands.
  await eventually("web1 to phone home", async () => (await t.events(owned.uuid)).includes(T.PHONED_HOME), 30_000);
}, scaled(90_000));

afterAll(async () => {
  await t?.dispose();
});

const closed = (m: LabMachine) => eventually(`the relay of ${m.uuid} to close`, () => m.bmc.serial.attachments === 0);

describe("metal-console in the lab, driven by the real OpenSSH client", () => {
  it("the owner sees the machine's console, what they type reaches its serial console, and ~. disconnects", async () => {
    const s = ssh(owned, { key: keys.owner.file, token: tokens.member });
    await s.see(`connected to ${owned.uuid}, exit with ~.`);
    // The scrollback since the allocation began: the installation's kexec into the installed OS, up to its login
    // prompt. The discovery image's boot, printed while the machine waited for an allocation, is withheld.
    await s.see("kexec: starting ");
    await s.see("web1 login: ");
    expect(s.seen.out).not.toContain(`SimBIOS 1.0 (${owned.uuid})`);
    s.type("hostname\r");
    // The simulated OS echoes the line and answers it; both come back over ssh.
    await s.see("hostname\r\nweb1\r\n");
    expect(owned.bmc.serial.typed).toContain("hostname\r");
    expect(owned.sim.consoleLog).toContain("hostname\r\nweb1\r\n");
    // OpenSSH's escape: ~. after a line end ends the session on the client side (exit 255), and never reaches the machine.
    s.type("\r~.");
    expect(await s.ends()).toBe(255);
    expect(owned.bmc.serial.typed).not.toContain("~.");
    await closed(owned);
  });

  it("refuses the owner's key without a token or with another project's token, each with its own message; a wrong key and a free machine with the outsiders' one", async () => {
    expect(await refused(owned, { key: keys.owner.file })).toContain(`metal-console: no token: send a token of a member of project "${LAB.project}" in LC_METAL_TOKEN`);
    expect(await refused(owned, { key: keys.owner.file, token: tokens.other })).toContain(`metal-console: the token of "otto" is not one of a member of project "${LAB.project}"`);
    // A key that is not one of the allocation's learns nothing about the machine: the free one reads like the allocated one.
    const outsider = (id: string) => new RegExp(`metal-console: machine "${id}" has no console for the SSH key you authenticated with \\(SHA256:[A-Za-z0-9+/]+\\)`);
    expect(await refused(owned, { key: keys.stranger.file, token: tokens.member })).toMatch(outsider(owned.uuid));
    expect(await refused(free, { key: keys.owner.file, token: tokens.member })).toMatch(outsider(free.uuid));
    // None of them got as far as the machine's serial console.
    expect(owned.bmc.serial.opened + free.bmc.serial.opened).toBe(1);
  });

  it("an operator admin gets into a free machine, with any key", async () => {
    const s = ssh(free, { key: keys.stranger.file, token: t.lab.adminToken });
    await s.see(`connected to ${free.uuid}`);
    await s.see("Loading metal-hammer...");
    s.type("hostname\r");
    await s.see("there is no login in the discovery image");
    expect(free.bmc.serial.typed).toContain("hostname\r");
    s.kill();
    await s.ends();
    await closed(free);
  });

  it("revoking the member's token ends their open console with a message", async () => {
    const revocable = await memberToken("mia");
    const s = ssh(owned, { key: keys.owner.file, token: revocable.secret });
    await s.see(`connected to ${owned.uuid}`);
    // The member revokes the token themselves (TokenService.Revoke, own tokens); the open console re-checks it.
    await as(TokenService, revocable.secret).revoke({ id: revocable.id });
    expect(await s.ends(20_000)).toBe(1);
    expect(s.seen.out).toContain("metal-console: the token in LC_METAL_TOKEN is no longer valid (the token has been revoked); closing the console");
    await closed(owned);
  });

  it("freeing the machine (tenant Delete) ends the owner's console with a message", async () => {
    const s = ssh(owned, { key: keys.owner.file, token: tokens.member });
    await s.see(`connected to ${owned.uuid}`);
    await as(MachineService, tokens.member).delete({ id: owned.uuid, project: LAB.project });
    expect(await s.ends(20_000)).toBe(1);
    expect(s.seen.out).toContain(`metal-console: machine "${owned.uuid}" was freed; closing the console`);
    await closed(owned);
  });
});
