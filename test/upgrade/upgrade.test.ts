import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { ProjectMemberService as MdProjectMembers } from "../../gen/masterdata/v1/project_member_pb.js";
import { ProjectService as MdProjects } from "../../gen/masterdata/v1/project_pb.js";
import { TenantMemberService as MdTenantMembers } from "../../gen/masterdata/v1/tenant_member_pb.js";
import { TenantService as MdTenants } from "../../gen/masterdata/v1/tenant_pb.js";
import { AuditService as AdminAudit } from "../../gen/metal/admin/v1/audit_pb.js";
import { MachineService as AdminMachines } from "../../gen/metal/admin/v1/machine_pb.js";
import { SizeReservationService as AdminReservations } from "../../gen/metal/admin/v1/size_reservation_pb.js";
import { SwitchService as AdminSwitches } from "../../gen/metal/admin/v1/switch_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { FilesystemLayoutService } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { ImageService } from "../../gen/metal/api/v1/image_pb.js";
import { IPService, IpType } from "../../gen/metal/api/v1/ip_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService } from "../../gen/metal/api/v1/network_pb.js";
import { PartitionService } from "../../gen/metal/api/v1/partition_pb.js";
import { SizeService } from "../../gen/metal/api/v1/size_pb.js";
import { type App, createApp } from "../../server/app.js";
import { loadConfig } from "../../server/config.js";
import { generateEd25519 } from "../../server/console/host-key.js";
import type { ConsoleServer } from "../../server/console/ssh-server.js";
import { type Listener, listen } from "../../server/http/listener.js";
import { createLogger } from "../../server/logger.js";
import { createScratchDatabase, type ScratchDatabase } from "../helpers/postgres.js";
import { masterdataReleaseSql, metalReleaseSql, type ReleaseKeys, releaseIds } from "./release-data.js";
import { type DatabaseKind, migrateTo, previousRelease, type Release, readJournal } from "./releases.js";

// An upgrade from the previous release (server/db/releases.json): both databases migrated to that release's
// schema and filled the way that release fills them, then the current server started on them (it applies the
// newer migrations), and everything read back through its API. docs/upgrades.md.
let release: Release;
let metalDb: ScratchDatabase;
let mdDb: ScratchDatabase;
let dataDir: string;
let app: App;
let listener: Listener;
let consoleServer: ConsoleServer;
let keys: ReleaseKeys;
const tokens: Record<"admin" | "alice" | "revoked", string> = { admin: "", alice: "", revoked: "" };
const id = releaseIds();

async function runSql(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

async function appliedMigrations(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return Number((await client.query<{ n: string }>("select count(*) as n from drizzle.__drizzle_migrations")).rows[0]!.n);
  } finally {
    await client.end();
  }
}

const client = <S extends DescService>(service: S, token = tokens.admin) => createClient(service, createTransport({ baseUrl: listener.url, protocol: "connect", token }));

beforeAll(async () => {
  release = await previousRelease();
  [metalDb, mdDb] = await Promise.all([createScratchDatabase("upgrade_metal"), createScratchDatabase("upgrade_md")]);
  // The previous release's schema, by the migrator the server runs.
  await migrateTo("metal", metalDb.url, release.metal);
  await migrateTo("masterdata", mdDb.url, release.masterdata);

  // Its keys and rows.
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const host = generateEd25519();
  keys = {
    signingKey: { id: "k-previous-release", privateJwk: await exportJWK(privateKey), publicJwk: await exportJWK(publicKey) },
    hostKey: { privateKey: host.private, publicKey: host.public.trim() },
  };
  await runSql(metalDb.url, metalReleaseSql(keys));
  await runSql(mdDb.url, masterdataReleaseSql());
  // The tokens that release handed out: JWTs as its authority signs them (EdDSA, kid, issuer "metal", jti = the row's id).
  const sign = (jti: string, sub: string) =>
    new SignJWT({}).setProtectedHeader({ alg: "EdDSA", kid: keys.signingKey.id }).setIssuer("metal").setSubject(sub).setJti(jti).setIssuedAt().setExpirationTime("30d").sign(privateKey);
  tokens.admin = await sign(id.adminToken, "admin");
  tokens.alice = await sign(id.aliceToken, "alice");
  tokens.revoked = await sign(id.revokedToken, "mallory");

  // The current server on those databases: it migrates them at start.
  dataDir = await mkdtemp(join(tmpdir(), "metal-upgrade-"));
  const config = loadConfig({
    METAL_LISTEN: "127.0.0.1:0",
    METAL_DATA_DIR: dataDir,
    DATABASE_URL: metalDb.url,
    MASTERDATA_DATABASE_URL: mdDb.url,
    METAL_DB_POOL_SIZE: "4",
    MASTERDATA_DB_POOL_SIZE: "2",
    METAL_AUDIT: "true",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
  });
  app = await createApp(config, createLogger(config.logLevel, { pretty: false }));
  listener = await listen(app.handler, config.listen, undefined, config.connections);
  consoleServer = await app.startConsole("127.0.0.1:0");
});

afterAll(async () => {
  app?.endStreams();
  await listener?.close(1000);
  await app?.close();
  metalDb?.dropLater();
  mdDb?.dropLater();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe("upgrade from the previous release", () => {
  it("started from the previous release's schema and ends with every migration applied", async () => {
    for (const [kind, db, last] of [
      ["metal", metalDb, release.metal],
      ["masterdata", mdDb, release.masterdata],
    ] as [DatabaseKind, ScratchDatabase, string][]) {
      const journal = await readJournal(kind);
      const releaseCount = journal.entries.findIndex((e) => e.tag === last) + 1;
      expect(releaseCount, `${kind}: ${last} is a migration`).toBeGreaterThan(0);
      expect(await appliedMigrations(db.url), kind).toBe(journal.entries.length);
    }
  });

  it("reads back the partition, size, image, layout and size reservation", async () => {
    const p = (await client(PartitionService).get({ id: id.partition })).partition!;
    expect([p.id, p.name, p.description]).toEqual([id.partition, "rack row 1", "first partition"]);
    expect(p.bootConfig?.commandLine).toBe("console=ttyS0");
    expect(p.dnsServers).toEqual(["1.1.1.1"]);
    const s = (await client(SizeService).get({ id: id.size })).size!;
    expect(s.constraints.map((c) => [c.min, c.max])).toEqual([
      [4n, 4n],
      [17179869184n, 17179869184n],
      [1n, 500000000000n],
    ]);
    const image = (await client(ImageService).get({ id: id.image })).image!;
    expect(image.sha256).toBe("ab".repeat(32));
    expect(image.url).toBe("http://images.example/debian.tar");
    const layout = (await client(FilesystemLayoutService).get({ id: id.layout })).filesystemLayout!;
    expect(layout.filesystems.map((f) => f.path)).toEqual(["/boot/efi", "/"]);
    const reservations = (await client(AdminReservations).list({})).sizeReservations;
    expect(reservations.map((r) => [r.id, r.project, r.amount, r.partitionIds])).toEqual([[id.reservation, "pa", 1, [id.partition]]]);
  });

  it("reads back the machines: allocation, hardware, events, BMC, tags and commands", async () => {
    const m = (await client(AdminMachines).get({ id: id.allocated })).machine!;
    expect(m.allocation?.hostname).toBe("web1");
    expect(m.allocation?.project).toBe("pa");
    expect(m.allocation?.networks.flatMap((n) => n.ips)).toEqual([`${id.v4}.243.73`, `${id.v6}:4f23::73`]);
    expect(m.tags).toContain("team=web");
    expect(m.hardware?.disks.map((d) => d.name)).toEqual(["/dev/sda"]);
    expect(m.events?.log.map((e) => e.type)).toEqual([T.PHONED_HOME, T.BOOTING_NEW_KERNEL, T.INSTALLING, T.WAITING, T.REGISTERING, T.PREPARING, T.PXE_BOOTING]);
    expect(m.bmc?.address).toBe("10.254.0.10:623");
    const commands = (await client(AdminMachines).commands({ id: id.allocated })).commands;
    expect(commands.map((c) => c.id).sort()).toEqual([id.commandDone, id.commandPending].sort());
    const waiting = (await client(AdminMachines).get({ id: id.waiting })).machine!;
    expect(waiting.waiting).toBe(true);
    expect(waiting.allocation).toBeUndefined();
    const sw = (await client(AdminSwitches).get({ id: "leaf01" })).switch!;
    expect(sw.lastSync?.error).toBe("");
    expect(sw.lastSync?.time?.seconds).toBe(BigInt(Date.parse("2026-11-01T12:00:30.000Z") / 1000));
  });

  it("reads back networks and IPs, static and ephemeral", async () => {
    const net = (await client(NetworkService).get({ id: id.childNetwork, project: "pa" })).network!;
    expect(net.prefixes).toEqual([`${id.v4}.243.0/24`, `${id.v6}:4f23::/64`]);
    const ips = (await client(IPService).list({ project: "pa" })).ips;
    const byIp = new Map(ips.map((ip) => [ip.ip, ip]));
    expect([...byIp.keys()].sort()).toEqual([`${id.v4}.243.200`, `${id.v4}.243.73`, `${id.v6}:4f23::73`].sort());
    expect(byIp.get(`${id.v4}.243.200`)?.type).toBe(IpType.STATIC);
    expect(byIp.get(`${id.v4}.243.73`)?.type).toBe(IpType.EPHEMERAL);
  });

  it("accepts the tokens the previous release issued, and still refuses the one it revoked", async () => {
    const listed = (await client(AdminTokens).list({})).tokens;
    expect(listed.map((t) => t.id).sort()).toEqual([id.adminToken, id.aliceToken, id.revokedToken].sort());
    const alices = (await client(MachineService, tokens.alice).list({ project: "pa" })).machines;
    expect(alices.map((m) => m.id)).toEqual([id.allocated]);
    const refused = await client(MachineService, tokens.revoked)
      .list({ project: "pa" })
      .then(
        () => undefined,
        (err: unknown) => ConnectError.from(err).code,
      );
    expect(refused).toBe(Code.Unauthenticated);
  });

  it("reads back tenants, projects, memberships, history and the ids ever used", async () => {
    const t = (await client(MdTenants).get({ id: "t" })).tenant!;
    expect([t.name, t.description, t.meta?.labels, t.meta?.annotations]).toEqual(["t", "the tenant", ["env=prod"], { owner: "ops" }]);
    const pa = (await client(MdProjects).get({ id: "pa" })).project!;
    expect([pa.tenantId, pa.quotas?.machine?.max]).toEqual(["t", 3]);
    expect((await client(MdProjects).find({ tenantId: "t" })).projects.map((p) => p.meta?.id).sort()).toEqual(["pa", "pb"]);
    const members = (await client(MdProjectMembers).find({ projectId: "pa" })).projectMembers;
    expect(members.map((m) => [m.tenantId, m.role])).toEqual([["alice", 2]]);
    const tenantMembers = (await client(MdTenantMembers).find({ tenantId: "t" })).tenantMembers;
    expect(tenantMembers.map((m) => [m.memberId, m.role])).toEqual([["alice", 3]]);
    expect((await client(MdTenants).getHistory({ id: "t", at: t.meta!.updatedTime })).tenant?.name).toBe("t");
    // A tenant deleted under the previous release keeps its id used: it is not handed out again.
    const reuse = await client(MdTenants)
      .create({ tenant: { meta: { id: "gone" }, name: "again" } })
      .then(
        () => undefined,
        (err: unknown) => ConnectError.from(err).code,
      );
    expect(reuse).toBe(Code.AlreadyExists);
  });

  it("serves the SSH console with the previous release's host key", () => {
    expect(consoleServer.hostKey).toBe(keys.hostKey.publicKey);
  });

  it("takes the previous release's writes on the upgraded schema, as its replicas do during a rolling update", async () => {
    // The same statements that release runs, with new ids: the upgraded schema still accepts them.
    await runSql(metalDb.url, metalReleaseSql(keys, "b", false));
    const second = releaseIds("b");
    const m = (await client(AdminMachines).get({ id: second.allocated })).machine!;
    expect(m.allocation?.hostname).toBe("web1");
    expect(m.partition).toBe(second.partition);
    expect((await client(ImageService).get({ id: second.image })).image?.sha256).toBe("ab".repeat(32));
  });

  it("allocates the machine that waited before the upgrade, and records it in the new audit trail", async () => {
    const created = (await client(MachineService, tokens.alice).create({ project: "pa", partition: id.partition, size: id.size, image: "debian-12", hostname: "web2", networks: [id.childNetwork] })).machine!;
    expect(created.id).toBe(id.waiting);
    const ips = created.allocation!.networks.flatMap((n) => n.ips);
    expect(ips).toHaveLength(2);
    expect(ips).not.toContain(`${id.v4}.243.73`);
    expect(ips).not.toContain(`${id.v4}.243.200`);
    const audited = (await client(AdminAudit).list({})).entries;
    expect(audited.some((e) => e.method.endsWith("MachineService/Create") && e.subject === "alice")).toBe(true);
  });
});
