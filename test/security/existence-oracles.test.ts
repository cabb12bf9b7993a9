import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { IPService } from "../../gen/metal/api/v1/ip_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService } from "../../gen/metal/api/v1/network_pb.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { launchServer, type TestServer } from "../helpers/server-launch.js";
import { type ConsoleTarget, generateKey, refusedConsole, writeKnownHosts } from "../helpers/ssh-client.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * Issue 12, item 16 (networks, IPs and the SSH console): whatever belongs to
 * someone else reads, for an outsider, exactly like something that does not
 * exist: the same code and the same words (with the id the caller sent).
 */

let server: TestServer;
let stopServer: () => Promise<void>;
let fixture: PartitionFixture;
let dir: string;
/** An editor of project "pa": the outsider to everything of project "pb". */
let outsider: string;
/** An editor of project "pb". */
let owner: string;

beforeAll(async () => {
  ({ server, stop: stopServer } = await launchServer({ console: true, consolePollMs: 200 }));
  fixture = await setUpPartition(server);
  dir = await mkdtemp(join(tmpdir(), "existence-oracles-"));
  const tokens = server.client(AdminTokens, server.adminToken);
  outsider = (await tokens.create({ subject: "outsider", roles: { projectRoles: { pa: ProjectRole.EDITOR } } })).secret;
  owner = (await tokens.create({ subject: "owner", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
});

afterAll(async () => {
  fixture?.stopAll();
  await stopServer?.();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The code and message of a failed call, with `id` replaced, so that answers about different ids compare. */
async function answer(call: Promise<unknown>, id: string): Promise<string> {
  try {
    await call;
    return "OK";
  } catch (err) {
    const ce = ConnectError.from(err);
    return `${Code[ce.code]}: ${ce.rawMessage.replaceAll(id, "<id>")}`;
  }
}

describe("networks and IPs of another project (issue 12, item 16)", () => {
  it("another project's private network (Get, Update, Delete, allocating an IP in it) and IP answer as ones that do not exist", async () => {
    const nets = server.client(NetworkService, outsider);
    const ips = server.client(IPService, outsider);
    const theirs = fixture.primary.pb;
    const none = "0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee";
    const calls: [string, (id: string) => Promise<unknown>][] = [
      ["Get", (id) => nets.get({ id, project: "pa" })],
      ["Update", (id) => nets.update({ id, project: "pa", version: 1n, name: "mine now" })],
      ["Delete", (id) => nets.delete({ id, project: "pa" })],
      ["IP Create", (id) => ips.create({ project: "pa", network: id })],
      ["IP Create (given address)", (id) => ips.create({ project: "pa", network: id, ip: "10.0.0.10" })],
    ];
    for (const [what, call] of calls) {
      const forTheirs = await answer(call(theirs), theirs);
      expect(forTheirs, what).toBe(await answer(call(none), none));
      expect(forTheirs, what).toBe('NotFound: network "<id>" not found');
    }
    // The partition's super network is no tenant's either.
    expect(await answer(ips.create({ project: "pa", network: "super" }), "super")).toBe(await answer(ips.create({ project: "pa", network: "no-such-net" }), "no-such-net"));
    // Nothing was changed or taken.
    const mine = server.client(NetworkService, owner);
    expect((await mine.get({ id: theirs, project: "pb" })).network?.name).not.toBe("mine now");
    expect((await server.client(IPService, owner).list({ project: "pb" })).ips).toHaveLength(0);
    expect((await ips.list({ project: "pa" })).ips).toHaveLength(0);

    // And another project's IP in it: Get, Update and Delete answer as for an IP that does not exist.
    const theirIp = (await server.client(IPService, owner).create({ project: "pb", network: theirs })).ip!.id;
    const noIp = randomUUID();
    const ipCalls: [string, (id: string) => Promise<unknown>][] = [
      ["IP Get", (id) => ips.get({ id, project: "pa" })],
      ["IP Update", (id) => ips.update({ id, project: "pa", version: 1n, name: "mine now" })],
      ["IP Delete", (id) => ips.delete({ id, project: "pa" })],
    ];
    for (const [what, call] of ipCalls) {
      const forTheirs = await answer(call(theirIp), theirIp);
      expect(forTheirs, what).toBe(await answer(call(noIp), noIp));
      expect(forTheirs, what).toMatch(/^NotFound: /);
    }
    expect((await server.client(IPService, owner).get({ id: theirIp, project: "pb" })).ip?.name).not.toBe("mine now");
  });
});

describe("the SSH console to an outsider (issue 12, item 16)", () => {
  const keys = { owner: "", stranger: "" };
  let target: ConsoleTarget;
  let allocated: string;
  let free: string;

  beforeAll(async () => {
    let ownerPub = "";
    ({ file: keys.owner, pub: ownerPub } = await generateKey(dir, "owner"));
    ({ file: keys.stranger } = await generateKey(dir, "stranger"));
    const c = server.console!;
    target = { host: "127.0.0.1", port: c.port, knownHosts: await writeKnownHosts(join(dir, "known_hosts"), "127.0.0.1", c.port, c.hostKey), home: dir };
    allocated = (await fixture.bootMachine("r1")).id;
    const { machine } = await server.client(MachineService, owner).create({
      project: "pb",
      partition: "p1",
      size: "s1",
      image: "debian-12",
      name: "oracle",
      networks: [fixture.primary.pb],
      sshKeys: [ownerPub],
    });
    expect(machine?.id).toBe(allocated);
    free = (await fixture.bootMachine("r2")).id;
  });

  /** The refusal ssh printed, with the machine id replaced. */
  const refusal = async (id: string, key: string, token?: string) => (await refusedConsole(target, id, { key, token })).replaceAll(id, "<id>").trim();

  it(
    "a key that is not one of the allocation's gets one refusal for an unknown, a free and another's allocated machine; the key's holder a helpful one",
    async () => {
      for (const token of [undefined, outsider, owner]) {
        const unknown = await refusal(randomUUID(), keys.stranger, token);
        expect(unknown).toMatch(/^metal-console: machine "<id>" has no console for the SSH key you authenticated with \(SHA256:[A-Za-z0-9+/]+\)/);
        expect(await refusal(free, keys.stranger, token)).toBe(unknown);
        expect(await refusal(allocated, keys.stranger, token)).toBe(unknown);
        // The machine's owner key does not make a free or unknown machine speak either.
        expect(await refusal(free, keys.owner, token)).toBe(await refusal(randomUUID(), keys.owner, token));
      }
      expect(server.console!.sessions).toBe(0);
      // The holder of one of the allocation's keys is still told what is missing.
      expect(await refusal(allocated, keys.owner)).toContain('metal-console: no token: send a token of a member of project "pb"');
      expect(await refusal(allocated, keys.owner, outsider)).toContain('metal-console: the token of "outsider" is not one of a member of project "pb"');
    },
    scaled(120_000),
  );
});
