import { randomUUID } from "node:crypto";
import type { DescService, MessageInitShape } from "@bufbuild/protobuf";
import { type Client, Code } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { FilesystemLayoutService } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { ImageService } from "../../gen/metal/api/v1/image_pb.js";
import { type MachineAllocation, MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { PartitionService } from "../../gen/metal/api/v1/partition_pb.js";
import { TokenService } from "../../gen/metal/api/v1/token_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { BootService, type BootServiceInstallationSucceededRequestSchema } from "../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { SwitchService } from "../../gen/metal/infra/v1/switch_pb.js";
import { createMachineCredentials } from "../../server/auth/machine-credential.js";
import { createLogger } from "../../server/logger.js";
import { machineLifecycleRepository } from "../../server/repositories/machine-repository.js";
import { eventually } from "../helpers/eventually.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { launchServer, type TestServer } from "../helpers/server-launch.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * Machine credentials over the real RPCs: metal-hammer's credential acts only
 * for its own machine, only on the hammer's methods, and is void once the
 * machine's installation succeeded (issue 16, "the partition boundary").
 * Every refusal is followed by a look at what it would have changed.
 */

let server: TestServer;
let stopServer: () => Promise<void>;
let fixture: PartitionFixture;
let tenantToken: string;
const opened: AbortController[] = [];
/** The server's log at trace level: no machine credential may show up in it (see the last test). */
const logLines: string[] = [];
/** Every machine credential the tests got or made. */
const credentialsSeen = new Set<string>();

beforeAll(async () => {
  const log = createLogger("trace", { destination: { write: (line: string) => void logLines.push(line) } });
  ({ server, stop: stopServer } = await launchServer({
    env: { LOG_LEVEL: "trace", METAL_DB_POOL_SIZE: "10", MASTERDATA_DB_POOL_SIZE: "4" },
    log,
    dropInBackground: true,
    waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 1_000 },
  }));
  fixture = await setUpPartition(server);
  tenantToken = (await server.client(AdminTokens, server.adminToken).create({ subject: "tenant", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
});

afterAll(async () => {
  for (const a of opened) a.abort();
  await stopServer?.();
});

const P = "p1";
const LEAVES = { r1: ["leaf01", "leaf02"], r2: ["leaf03", "leaf04"] } as const;
let macCounter = 0;
const newMac = () => `0c:c4:7a:c0:00:${(++macCounter).toString(16).padStart(2, "0")}`;

const as = <S extends DescService>(service: S, credential: string): Client<S> => {
  credentialsSeen.add(credential);
  return server.client(service, credential);
};
const rows = async <R>(q: ReturnType<typeof sql>) => ((await server.app.db.execute(q)) as unknown as { rows: R[] }).rows;

function hardware(rack: "r1" | "r2", macs: readonly string[]) {
  return {
    memory: 16n * 2n ** 30n,
    cpus: [{ model: "Xeon", cores: 4, threads: 8 }],
    disks: [{ name: "/dev/sda", size: 240_000_000_000n }],
    nics: macs.map((mac, i) => ({ name: `eth${i}`, mac, neighbors: [{ hostname: LEAVES[rack][i]!, port: "swp1" }] })),
  };
}

const BOOT_INFO = { imageId: "debian-12.0.20250101", primaryDisk: "/dev/sda", osPartition: "/dev/sda2", kernel: "/boot/vmlinuz", initrd: "/boot/initrd", cmdline: "root=/dev/sda2", bootloaderId: "debian" };
const succeeded = (id: string, consolePassword: string): MessageInitShape<typeof BootServiceInstallationSucceededRequestSchema> => ({ partition: P, machineId: id, consolePassword, bootInfo: BOOT_INFO });

/** What a machine's hammer holds: its id, MACs and the credential pixie's Boot handed out. */
interface Hammer {
  id: string;
  macs: string[];
  rack: "r1" | "r2";
  credential: string;
}

/** pixie's Boot for an unknown MAC with the firmware UUID: the first-boot credential. */
async function firstBoot(rack: "r1" | "r2"): Promise<Hammer> {
  const id = randomUUID();
  const macs = [newMac(), newMac()];
  const answer = await server.client(BootService, fixture.infraToken).boot({ partition: P, mac: macs[0]!, uuid: id });
  expect(answer.machineId).toBe(id);
  return { id, macs, rack, credential: answer.machineCredential };
}

/** A machine whose hammer, with its own credential only, registered and reported itself waiting. */
async function registeredHammer(rack: "r1" | "r2"): Promise<Hammer> {
  const h = await firstBoot(rack);
  const events = as(EventService, h.credential);
  await events.send({ partition: P, events: [{ machineId: h.id, type: T.PREPARING }] });
  await as(BootService, h.credential).register({ partition: P, machineId: h.id, hardware: hardware(rack, h.macs) });
  await events.send({ partition: P, events: [T.REGISTERING, T.WAITING].map((type) => ({ machineId: h.id, type })) });
  return h;
}

/** Holds Wait open (gRPC, the lean path metal-hammer uses) until the allocation arrives. */
async function waitFor(h: Hammer, credential = h.credential): Promise<{ allocation: Promise<MachineAllocation | undefined> }> {
  const abort = new AbortController();
  opened.push(abort);
  const stream = server.grpcClient(BootService, credential).wait({ partition: P, machineId: h.id }, { signal: abort.signal });
  const allocation = (async () => {
    for await (const msg of stream) if (msg.allocation) return msg.allocation;
    return undefined;
  })();
  allocation.catch(() => undefined);
  const admin = server.client(AdminMachineService, server.adminToken);
  await eventually(`machine ${h.id} to start waiting`, async () => (await admin.get({ id: h.id })).machine?.waiting);
  // Wrapped: an async function would otherwise wait for the allocation itself.
  return { allocation };
}

/** The first message of a stream (its error, when refused). */
async function first(stream: AsyncIterable<unknown>): Promise<unknown> {
  for await (const m of stream) return m;
  return undefined;
}

/** What a refused call must leave as it was. */
async function stateOf(id: string) {
  const [row] = await rows<{ hardware: unknown; generation: number; allocation: unknown }>(sql`select hardware, credential_generation as generation, allocation from machines where id = ${id}`);
  const [ev] = await rows<{ events: unknown[] }>(sql`select events from machine_events where machine_id = ${id}`);
  return { ...row, events: ev?.events.length ?? 0 };
}

const refusedWait = async (credential: string, id: string, code: Code, partition = P) => {
  // Both ways in: Connect (the server's Connect handler) and plain gRPC (the lean stream path).
  await expectCode(first(server.client(BootService, credential).wait({ partition, machineId: id })), code);
  await expectCode(first(server.grpcClient(BootService, credential).wait({ partition, machineId: id })), code);
};

describe("a machine credential acts only for its own machine", () => {
  let x: Hammer;
  let y: Hammer;
  beforeAll(async () => {
    [x, y] = [await registeredHammer("r1"), await registeredHammer("r2")];
  });

  it("works for its own machine on every hammer method", async () => {
    const boot = as(BootService, x.credential);
    expect((await boot.register({ partition: P, machineId: x.id, hardware: hardware("r1", x.macs) })).size).toBe("s1");
    const before = (await stateOf(x.id)).events;
    await as(EventService, x.credential).send({ partition: P, events: [{ machineId: x.id, type: T.WAITING }] });
    expect((await stateOf(x.id)).events).toBe(before + 1);
    // Past authorization, the use case answers: nothing to install, nothing to abort.
    await expectCode(boot.installationSucceeded(succeeded(x.id, "pw")), Code.FailedPrecondition, "not allocated");
    await expectCode(boot.abortReinstall({ partition: P, machineId: x.id }), Code.FailedPrecondition, "not being reinstalled");
    expect(decodeJwt((await boot.renewCredential({ partition: P, machineId: x.id })).machineCredential).sub).toBe(x.id);
    expect((await as(ImageService, x.credential).get({ id: "debian-12" })).image?.id).toBe("debian-12.0.20250101");
    expect((await as(FilesystemLayoutService, x.credential).get({ id: "s1-default" })).filesystemLayout?.id).toBe("s1-default");
    await waitFor(x);
  });

  it("cannot Register another machine, not even with hardware that has its own MAC", async () => {
    const before = await stateOf(y.id);
    const boot = as(BootService, x.credential);
    await expectCode(boot.register({ partition: P, machineId: y.id, hardware: hardware("r2", [x.macs[0]!, newMac()]) }), Code.PermissionDenied, "acts only for machine");
    await expectCode(boot.register({ partition: P, machineId: y.id, hardware: hardware("r2", y.macs) }), Code.PermissionDenied);
    expect(await stateOf(y.id)).toEqual(before);
  });

  it("cannot Wait for another machine (it would read its allocation)", async () => {
    await refusedWait(x.credential, y.id, Code.PermissionDenied);
  });

  it("cannot send another machine's events; a batch mixing both is refused whole and nothing is stored", async () => {
    const [bx, by] = [await stateOf(x.id), await stateOf(y.id)];
    const events = as(EventService, x.credential);
    await expectCode(events.send({ partition: P, events: [{ machineId: y.id, type: T.PHONED_HOME }] }), Code.PermissionDenied);
    await expectCode(
      events.send({
        partition: P,
        events: [
          { machineId: x.id, type: T.WAITING },
          { machineId: y.id, type: T.PHONED_HOME },
        ],
      }),
      Code.PermissionDenied,
    );
    await expectCode(events.send({ partition: P, events: [] }), Code.PermissionDenied, "names no machine");
    expect([await stateOf(x.id), await stateOf(y.id)]).toEqual([bx, by]);
  });

  it("cannot report another machine's installation, abort its reinstall or renew a credential for it", async () => {
    const before = await stateOf(y.id);
    const boot = as(BootService, x.credential);
    await expectCode(boot.installationSucceeded(succeeded(y.id, "pw")), Code.PermissionDenied);
    await expectCode(boot.abortReinstall({ partition: P, machineId: y.id, primaryDiskWiped: true }), Code.PermissionDenied);
    await expectCode(boot.renewCredential({ partition: P, machineId: y.id }), Code.PermissionDenied);
    await expectCode(boot.renewCredential({ partition: P, machineId: "" }), Code.PermissionDenied);
    expect(await stateOf(y.id)).toEqual(before);
  });

  it("is refused for its own machine named in another partition", async () => {
    const before = await stateOf(x.id);
    const boot = as(BootService, x.credential);
    await expectCode(boot.register({ partition: "p2", machineId: x.id, hardware: hardware("r1", x.macs) }), Code.PermissionDenied, 'partition "p1"');
    await expectCode(as(EventService, x.credential).send({ partition: "p2", events: [{ machineId: x.id, type: T.WAITING }] }), Code.PermissionDenied);
    await expectCode(boot.renewCredential({ partition: "p2", machineId: x.id }), Code.PermissionDenied);
    await refusedWait(x.credential, x.id, Code.PermissionDenied, "p2");
    expect(await stateOf(x.id)).toEqual(before);
  });

  it("is refused on every method that is not the hammer's", async () => {
    const c = x.credential;
    const calls: [string, Promise<unknown>][] = [
      ["MachineService.List", as(MachineService, c).list({ project: "pb" })],
      ["MachineService.Get", as(MachineService, c).get({ id: x.id, project: "pb" })],
      ["PartitionService.Get", as(PartitionService, c).get({ id: P })],
      ["TokenService.Create", as(TokenService, c).create({ description: "mine now" })],
      ["TokenService.List", as(TokenService, c).list({})],
      ["TokenService.Revoke", as(TokenService, c).revoke({ id: "x" })],
      ["UserService.Get", as(UserService, c).get({})],
      ["ImageService.List", as(ImageService, c).list({})],
      ["admin MachineService.Get", as(AdminMachineService, c).get({ id: x.id })],
      ["admin PartitionService.Delete", as(AdminPartitions, c).delete({ id: P })],
      ["admin TokenService.Create", as(AdminTokens, c).create({ subject: "evil", roles: { infraPartition: P } })],
      ["BootService.Boot", as(BootService, c).boot({ partition: P, mac: x.macs[0]! })],
      ["BootService.Dhcp", as(BootService, c).dhcp({ partition: P, machineId: x.id })],
      ["SwitchService.Register", as(SwitchService, c).register({ partition: P, id: "leaf09", rack: "r1", nics: [{ name: "swp1" }] })],
    ];
    for (const [name, call] of calls) {
      const err = await expectCode(call, Code.PermissionDenied);
      expect(err.rawMessage, name).toContain("only metal-hammer's methods");
    }
    expect((await server.client(SwitchService, fixture.infraToken).register({ partition: P, id: "leaf01", rack: "r1", nics: [{ name: "swp1" }] })).created).toBe(false);
    expect(await rows(sql`select id from switches where id = 'leaf09'`)).toEqual([]);
  });

  it("is no token to the token authority, so the SSH console (which asks it) takes none either", async () => {
    await expect(server.app.authority.verify(x.credential)).rejects.toMatchObject({ code: Code.Unauthenticated });
  });
});

describe("a first-boot credential is bound to the MAC it was handed out for", () => {
  it("registers only hardware that has that MAC, and so does the credential it renews", async () => {
    const h = await firstBoot("r1");
    const boot = as(BootService, h.credential);
    const renewed = (await boot.renewCredential({ partition: P, machineId: h.id })).machineCredential;
    const otherMacs = [newMac(), newMac()];
    for (const c of [h.credential, renewed]) {
      await expectCode(as(BootService, c).register({ partition: P, machineId: h.id, hardware: hardware("r1", otherMacs) }), Code.PermissionDenied, h.macs[0]);
    }
    expect((await stateOf(h.id)).hardware ?? null).toBeNull();
    // Upper case in the hardware is the same MAC.
    await as(BootService, renewed).register({ partition: P, machineId: h.id, hardware: hardware("r1", [otherMacs[0]!, h.macs[0]!.toUpperCase()]) });
    expect((await stateOf(h.id)).hardware).not.toBeNull();
  });

  it("is void once the machine registered hardware without that MAC (a MAC that claimed the UUID first gains nothing)", async () => {
    // Another NIC boots first and names the machine's UUID: it gets a first-boot credential for it, bound to its MAC.
    const real = await firstBoot("r1");
    const claimMac = newMac();
    const claim = (await server.client(BootService, fixture.infraToken).boot({ partition: P, mac: claimMac, uuid: real.id })).machineCredential;
    expect(decodeJwt(claim)).toMatchObject({ sub: real.id, mac: claimMac });
    // The machine itself registers its hardware, which has no NIC of that MAC.
    await as(BootService, real.credential).register({ partition: P, machineId: real.id, hardware: hardware("r1", real.macs) });
    await as(EventService, real.credential).send({ partition: P, events: [T.REGISTERING, T.WAITING].map((type) => ({ machineId: real.id, type })) });
    const before = await stateOf(real.id);

    await refusedWait(claim, real.id, Code.Unauthenticated);
    await expectCode(as(EventService, claim).send({ partition: P, events: [{ machineId: real.id, type: T.PHONED_HOME }] }), Code.Unauthenticated);
    await expectCode(as(BootService, claim).renewCredential({ partition: P, machineId: real.id }), Code.Unauthenticated);
    await expectCode(as(BootService, claim).installationSucceeded(succeeded(real.id, "pw")), Code.Unauthenticated);
    expect(await stateOf(real.id)).toEqual(before);
    // The machine's own credential is unaffected, and a NIC it has can boot it again.
    await as(BootService, real.credential).renewCredential({ partition: P, machineId: real.id });
    expect((await server.client(BootService, fixture.infraToken).boot({ partition: P, mac: real.macs[1]! })).machineId).toBe(real.id);
  });

  it("still registers where the machine is cabled when another partition's infra token made a bare record of its UUID", async () => {
    // Any infra token can name any UUID; such a bare record is no claim on the machine (domain/bare-record.ts).
    await server.client(AdminPartitions, server.adminToken).create({ id: "p2" });
    const p2Infra = (await server.client(AdminTokens, server.adminToken).create({ subject: "p2-agents", roles: { infraPartition: "p2" } })).secret;
    const h = await firstBoot("r2");
    await as(EventService, p2Infra).send({ partition: "p2", events: [{ machineId: h.id, type: T.PXE_BOOTING }] });
    const [bare] = await rows<{ partition: string }>(sql`select partition_id as partition from machines where id = ${h.id}`);
    expect(bare?.partition).toBe("p2");

    const answer = await server.client(BootService, fixture.infraToken).boot({ partition: P, mac: h.macs[0]!, uuid: h.id });
    expect(answer.machineId).toBe(h.id);
    expect((await as(BootService, answer.machineCredential).register({ partition: P, machineId: h.id, hardware: hardware("r2", h.macs) })).rack).toBe("r2");
    const [taken] = await rows<{ partition: string }>(sql`select partition_id as partition from machines where id = ${h.id}`);
    expect(taken?.partition).toBe(P);
    await as(EventService, answer.machineCredential).send({ partition: P, events: [{ machineId: h.id, type: T.REGISTERING }] });

    // Once registered in p1, a credential for the machine in p2 is no good.
    const p2Credential = await (await createMachineCredentials(server.app.db)).issue({ machineId: h.id, partition: "p2", generation: 0, mac: h.macs[0]! });
    await expectCode(as(EventService, p2Credential.secret).send({ partition: "p2", events: [{ machineId: h.id, type: T.PHONED_HOME }] }), Code.Unauthenticated);
  });
});

describe("credentials that are not valid are Unauthenticated", () => {
  let x: Hammer;
  beforeAll(async () => {
    x = await registeredHammer("r2");
  });

  /** The hammer methods a credential is tried on; none may change anything. */
  async function refusedEverywhere(credential: string, text?: string) {
    const before = await stateOf(x.id);
    const boot = as(BootService, credential);
    await expectCode(boot.register({ partition: P, machineId: x.id, hardware: hardware("r2", x.macs) }), Code.Unauthenticated, text);
    await expectCode(as(EventService, credential).send({ partition: P, events: [{ machineId: x.id, type: T.PHONED_HOME }] }), Code.Unauthenticated, text);
    await expectCode(boot.renewCredential({ partition: P, machineId: x.id }), Code.Unauthenticated, text);
    await expectCode(boot.installationSucceeded(succeeded(x.id, "pw")), Code.Unauthenticated, text);
    await expectCode(as(ImageService, credential).get({ id: "debian-12" }), Code.Unauthenticated, text);
    await refusedWait(credential, x.id, Code.Unauthenticated);
    expect(await stateOf(x.id)).toEqual(before);
  }

  it("an expired one", async () => {
    const expired = await (await createMachineCredentials(server.app.db, -60)).issue({ machineId: x.id, partition: P, generation: 0, mac: x.macs[0]! });
    await refusedEverywhere(expired.secret, "expired");
  });

  it("garbage, and a credential whose claims were changed after signing", async () => {
    await refusedEverywhere("not-a-credential");
    await refusedEverywhere("eyJhbGciOiJFZERTQSJ9.eyJpc3MiOiJtZXRhbC1tYWNoaW5lIn0.AAAA");
    const [header, payload, signature] = x.credential.split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
    const other = await registeredHammer("r1");
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: other.id })).toString("base64url");
    await expectCode(as(EventService, `${header}.${forged}.${signature}`).send({ partition: P, events: [{ machineId: other.id, type: T.PHONED_HOME }] }), Code.Unauthenticated);
    const longer = Buffer.from(JSON.stringify({ ...claims, exp: claims.exp + 86_400 })).toString("base64url");
    await refusedEverywhere(`${header}.${longer}.${signature}`);
  });

  it("one signed with another key", async () => {
    const { privateKey } = await generateKeyPair("EdDSA", { extractable: true });
    const kid = decodeJwt(x.credential) && JSON.parse(Buffer.from(x.credential.split(".")[0]!, "base64url").toString()).kid;
    void (await exportJWK(privateKey));
    const foreign = await new SignJWT({ partition: P, gen: 0, mac: x.macs[0]! })
      .setProtectedHeader({ alg: "EdDSA", kid, typ: "metal-machine+jwt" })
      .setIssuer("metal-machine")
      .setAudience("metal.infra.v1.BootService")
      .setSubject(x.id)
      .setIssuedAt()
      .setExpirationTime("1h")
      .sign(privateKey);
    await refusedEverywhere(foreign);
  });

  it("a metal token relabelled as a machine credential, and a machine credential relabelled as a metal token", async () => {
    // Same signing key for both kinds: only the issuer, audience and type tell them apart.
    const [ah, ap, as_] = server.adminToken.split(".");
    const adminClaims = JSON.parse(Buffer.from(ap!, "base64url").toString());
    await refusedEverywhere(`${ah}.${Buffer.from(JSON.stringify({ ...adminClaims, iss: "metal-machine", sub: x.id })).toString("base64url")}.${as_}`);
    const [mh, mp, ms] = x.credential.split(".");
    const machineClaims = JSON.parse(Buffer.from(mp!, "base64url").toString());
    const relabelled = `${mh}.${Buffer.from(JSON.stringify({ ...machineClaims, iss: "metal" })).toString("base64url")}.${ms}`;
    await expectCode(as(MachineService, relabelled).list({ project: "pb" }), Code.Unauthenticated);
    await expectCode(as(AdminMachineService, relabelled).get({ id: x.id }), Code.Unauthenticated);
    // And the machine verifier itself takes no metal token, whatever its roles.
    const verifier = await createMachineCredentials(server.app.db);
    await expect(verifier.verify(server.adminToken)).rejects.toMatchObject({ code: Code.Unauthenticated });
    await expect(verifier.verify(fixture.infraToken)).rejects.toMatchObject({ code: Code.Unauthenticated });
  });

  it("one of a generation the machine has not reached", async () => {
    const ahead = await (await createMachineCredentials(server.app.db)).issue({ machineId: x.id, partition: P, generation: 1, mac: x.macs[0]! });
    await refusedEverywhere(ahead.secret, "void");
  });
});

describe("a successful installation voids the credentials the discovery image held", () => {
  it("old credentials are Unauthenticated except for repeating InstallationSucceeded, which changes nothing; a new boot gets a working one", async () => {
    const x = await registeredHammer("r1");
    const renewedBefore = (await as(BootService, x.credential).renewCredential({ partition: P, machineId: x.id })).machineCredential;
    const { allocation } = await waitFor(x);
    const tenant = server.client(MachineService, tenantToken);
    await tenant.create({ project: "pb", partition: P, size: "s1", image: "debian-12", name: "voided", networks: [fixture.primary.pb], machineId: x.id });
    expect((await allocation)?.image).toBe("debian-12.0.20250101");
    await as(EventService, x.credential).send({ partition: P, events: [T.INSTALLING, T.BOOTING_NEW_KERNEL].map((type) => ({ machineId: x.id, type })) });
    await as(BootService, x.credential).installationSucceeded(succeeded(x.id, "first-password"));
    const commands = async () => (await machineLifecycleRepository.commandsOf(server.app.db, x.id)).map((c) => c.command);
    expect(await commands()).toEqual(["BOOT_FROM_DISK"]);
    const installed = await stateOf(x.id);
    expect(installed.generation).toBe(1);

    for (const old of [x.credential, renewedBefore]) {
      const boot = as(BootService, old);
      await refusedWait(old, x.id, Code.Unauthenticated);
      await expectCode(as(EventService, old).send({ partition: P, events: [{ machineId: x.id, type: T.PHONED_HOME }] }), Code.Unauthenticated, "void");
      await expectCode(boot.register({ partition: P, machineId: x.id, hardware: hardware("r1", x.macs) }), Code.Unauthenticated, "void");
      await expectCode(boot.renewCredential({ partition: P, machineId: x.id }), Code.Unauthenticated, "void");
      await expectCode(boot.abortReinstall({ partition: P, machineId: x.id }), Code.Unauthenticated, "void");
      await expectCode(as(ImageService, old).get({ id: "debian-12" }), Code.Unauthenticated, "void");
      // The answer got lost: the hammer repeats the call with what it holds, and nothing changes.
      await boot.installationSucceeded(succeeded(x.id, "second-password"));
    }
    expect(await stateOf(x.id)).toEqual(installed);
    expect(await commands()).toEqual(["BOOT_FROM_DISK"]);
    const password = async () => (await tenant.consolePassword({ id: x.id, project: "pb", reason: "checking the stored password" })).consolePassword;
    expect(await password()).toBe("first-password");

    // Restarted into the discovery image: pixie's Boot for its MAC hands out a credential of the new generation.
    const fresh = await server.client(BootService, fixture.infraToken).boot({ partition: P, mac: x.macs[1]! });
    expect(fresh.machineId).toBe(x.id);
    expect(decodeJwt(fresh.machineCredential)).toMatchObject({ sub: x.id, gen: 1 });
    await as(EventService, fresh.machineCredential).send({ partition: P, events: [{ machineId: x.id, type: T.PXE_BOOTING }] });
    expect((await stateOf(x.id)).events).toBe(installed.events + 1);
    const renewed = (await as(BootService, fresh.machineCredential).renewCredential({ partition: P, machineId: x.id })).machineCredential;
    await as(EventService, renewed).send({ partition: P, events: [{ machineId: x.id, type: T.PREPARING }] });
    expect((await stateOf(x.id)).events).toBe(installed.events + 2);
  });

  it("a superseded credential cannot report the installation of a later reinstall", async () => {
    const x = await registeredHammer("r2");
    const { allocation } = await waitFor(x);
    const tenant = server.client(MachineService, tenantToken);
    await tenant.create({ project: "pb", partition: P, size: "s1", image: "debian-12", name: "reinstalled", networks: [fixture.primary.pb], machineId: x.id });
    await allocation;
    await as(BootService, x.credential).installationSucceeded(succeeded(x.id, "first-password"));
    await tenant.reinstall({ id: x.id, project: "pb", image: "debian-12" });
    const reinstalling = await stateOf(x.id);

    // The first discovery image's credential is one generation behind: good only for a repeat, and this is none.
    await expectCode(as(BootService, x.credential).installationSucceeded(succeeded(x.id, "stale-password")), Code.Unauthenticated, "void");
    expect(await stateOf(x.id)).toEqual(reinstalling);

    // The discovery image booted for the reinstall holds the current generation and reports it.
    const current = (await server.client(BootService, fixture.infraToken).boot({ partition: P, mac: x.macs[0]! })).machineCredential;
    await as(BootService, current).installationSucceeded(succeeded(x.id, "reinstalled-password"));
    expect(await tenant.consolePassword({ id: x.id, project: "pb", reason: "checking the stored password" })).toMatchObject({ consolePassword: "reinstalled-password" });
    expect((await stateOf(x.id)).generation).toBe(2);
    await expectCode(as(BootService, x.credential).installationSucceeded(succeeded(x.id, "stale-password")), Code.Unauthenticated, "void");
  });
});

describe("an aborted reinstall", () => {
  /** x installed, then being reinstalled, with the credential pixie hands the reinstall's discovery image. */
  async function reinstalling(rack: "r1" | "r2", name: string) {
    const x = await registeredHammer(rack);
    const { allocation } = await waitFor(x);
    const tenant = server.client(MachineService, tenantToken);
    await tenant.create({ project: "pb", partition: P, size: "s1", image: "debian-12", name, networks: [fixture.primary.pb], machineId: x.id });
    await allocation;
    await as(BootService, x.credential).installationSucceeded(succeeded(x.id, "first-password"));
    await tenant.reinstall({ id: x.id, project: "pb", image: "debian-12" });
    const current = (await server.client(BootService, fixture.infraToken).boot({ partition: P, mac: x.macs[0]! })).machineCredential;
    return { x, current };
  }

  it("voids the discovery image's credential when the old OS boots again, as an installation does", async () => {
    const { x, current } = await reinstalling("r1", "aborted");
    expect((await stateOf(x.id)).generation).toBe(1);
    const aborted = await as(BootService, current).abortReinstall({ partition: P, machineId: x.id, primaryDiskWiped: false });
    expect(aborted.bootInfo).toBeDefined();
    expect((await stateOf(x.id)).generation).toBe(2);
    await expectCode(as(EventService, current).send({ partition: P, events: [{ machineId: x.id, type: T.PHONED_HOME }] }), Code.Unauthenticated, "void");
    await expectCode(as(BootService, current).renewCredential({ partition: P, machineId: x.id }), Code.Unauthenticated, "void");
    await refusedWait(current, x.id, Code.Unauthenticated);
  });

  it("keeps it when the disk was wiped: the machine stays in the discovery image", async () => {
    const { x, current } = await reinstalling("r2", "wiped");
    await as(BootService, current).abortReinstall({ partition: P, machineId: x.id, primaryDiskWiped: true });
    expect((await stateOf(x.id)).generation).toBe(1);
    const before = await stateOf(x.id);
    await as(EventService, current).send({ partition: P, events: [{ machineId: x.id, type: T.CRASHED, message: "reinstall failed" }] });
    expect((await stateOf(x.id)).events).toBe(before.events + 1);
  });
});

describe("RenewCredential", () => {
  it("gives a credential for the same machine that works and carries the same restrictions", async () => {
    const [x, y] = [await registeredHammer("r1"), await registeredHammer("r2")];
    const answer = await as(BootService, x.credential).renewCredential({ partition: P, machineId: x.id });
    const renewed = answer.machineCredential;
    expect(decodeJwt(renewed)).toMatchObject({ sub: x.id, partition: P, gen: 0, mac: x.macs[0] });
    expect(answer.credentialExpiresAt).toBeDefined();

    const before = await stateOf(x.id);
    await as(EventService, renewed).send({ partition: P, events: [{ machineId: x.id, type: T.WAITING }] });
    expect((await stateOf(x.id)).events).toBe(before.events + 1);
    await waitFor(x, renewed);

    const beforeY = await stateOf(y.id);
    await expectCode(as(EventService, renewed).send({ partition: P, events: [{ machineId: y.id, type: T.PHONED_HOME }] }), Code.PermissionDenied);
    await expectCode(as(BootService, renewed).register({ partition: P, machineId: y.id, hardware: hardware("r2", [x.macs[0]!, newMac()]) }), Code.PermissionDenied);
    await expectCode(as(BootService, renewed).renewCredential({ partition: P, machineId: y.id }), Code.PermissionDenied);
    await refusedWait(renewed, y.id, Code.PermissionDenied);
    await expectCode(as(MachineService, renewed).list({ project: "pb" }), Code.PermissionDenied);
    expect(await stateOf(y.id)).toEqual(beforeY);
  });

  it("is refused to metal tokens: infra, tenant, even an operator admin", async () => {
    const x = await registeredHammer("r1");
    for (const token of [fixture.infraToken, tenantToken, server.adminToken]) {
      await expectCode(server.client(BootService, token).renewCredential({ partition: P, machineId: x.id }), Code.PermissionDenied);
    }
  });
});

describe("infra tokens on the hammer's methods (as before machine credentials)", () => {
  it("register, send events, wait, and reach the use cases of InstallationSucceeded and AbortReinstall", async () => {
    const infra = fixture.infraToken;
    const id = randomUUID();
    const macs = [newMac(), newMac()];
    const boot = server.client(BootService, infra);
    await as(EventService, infra).send({ partition: P, events: [{ machineId: id, type: T.PREPARING }] });
    expect((await boot.register({ partition: P, machineId: id, hardware: hardware("r2", macs) })).rack).toBe("r2");
    await as(EventService, infra).send({ partition: P, events: [T.REGISTERING, T.WAITING].map((type) => ({ machineId: id, type })) });
    await waitFor({ id, macs, rack: "r2", credential: infra });
    await expectCode(boot.installationSucceeded(succeeded(id, "pw")), Code.FailedPrecondition, "not allocated");
    await expectCode(boot.abortReinstall({ partition: P, machineId: id }), Code.FailedPrecondition, "not being reinstalled");
    expect((await as(ImageService, infra).get({ id: "debian-12" })).image?.id).toBe("debian-12.0.20250101");
  });
});

describe("the server log", () => {
  it("holds none of the machine credentials handed out, renewed or presented in this file", async () => {
    // Its own traffic, so it holds when run alone: a first boot, a renewal, refusals of each kind.
    const h = await registeredHammer("r1");
    const renewed = (await as(BootService, h.credential).renewCredential({ partition: P, machineId: h.id })).machineCredential;
    credentialsSeen.add(renewed);
    await expectCode(as(MachineService, renewed).list({ project: "pb" }), Code.PermissionDenied);
    await expectCode(as(EventService, h.credential).send({ partition: P, events: [{ machineId: randomUUID(), type: T.WAITING }] }), Code.PermissionDenied);
    const expired = (await (await createMachineCredentials(server.app.db, -60)).issue({ machineId: h.id, partition: P, generation: 0, mac: h.macs[0]! })).secret;
    await expectCode(as(BootService, expired).renewCredential({ partition: P, machineId: h.id }), Code.Unauthenticated);
    const machineCredentials = [...credentialsSeen].filter((c) => c.split(".").length === 3 && c.length > 100);
    expect(machineCredentials.length).toBeGreaterThanOrEqual(2);
    expect(logLines.length).toBeGreaterThan(0);
    const log = logLines.join("");
    // The calls that carry and return credentials were logged (so their absence means something).
    expect(log).toContain("BootService/RenewCredential");
    expect(log).toContain("BootService/Boot");
    for (const c of machineCredentials) {
      // The signature alone would do to tell a leaked credential.
      expect(log.includes(c.split(".")[2]!), "a machine credential is in the log").toBe(false);
    }
  });
});
