import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, Code, createClient } from "@connectrpc/connect";
import { generateKeyPair, SignJWT } from "jose";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../gen/grpc/health/v1/health_pb.js";
import { ProjectMemberRole, ProjectMemberService } from "../../gen/masterdata/v1/project_member_pb.js";
import { ProjectService as MdProjects } from "../../gen/masterdata/v1/project_pb.js";
import { TenantMemberRole, TenantMemberService } from "../../gen/masterdata/v1/tenant_member_pb.js";
import { TenantService as MdTenants } from "../../gen/masterdata/v1/tenant_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { AdminRole, ProjectRole, TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import { HealthService, HealthStatus } from "../../gen/metal/api/v1/health_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService } from "../../gen/metal/api/v1/network_pb.js";
import { ProjectService as ApiProjects } from "../../gen/metal/api/v1/project_pb.js";
import { TenantService as ApiTenants } from "../../gen/metal/api/v1/tenant_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { cli } from "../cli/run-cli.js";
import { eventually } from "../helpers/eventually.js";
import { expectCode } from "../helpers/expect.js";
import { freePort } from "../helpers/free-port.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { createScratchDatabase, type ScratchDatabase, TEST_DATABASE_URL } from "../helpers/postgres.js";
import type { TestServer } from "../helpers/server-launch.js";
import { scaled } from "../helpers/timeouts.js";
import { REPO } from "./lab-process.js";

/**
 * Issue 20: masterdata-api and metal-api as two processes (the built bins),
 * each on its own scratch PostgreSQL database; metal-api reaches masterdata
 * only through MASTERDATA_URL. masterdata-api reads the metal database as a
 * role that may SELECT only the public key and token columns it needs, so
 * the test also proves it never needs more (and never sees a private key).
 */

/** A bin of this repository as a child process, with what it logged so far. */
class Bin {
  child: ChildProcess | undefined;
  out = "";
  private exited: Promise<void> = Promise.resolve();

  constructor(
    private readonly bin: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** Starts it and resolves with the URL it says it listens on. */
  async start(): Promise<string> {
    this.out = "";
    const child = spawn(process.execPath, [join(REPO, "bin", this.bin)], { env: this.env, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (this.out += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (this.out += d));
    let gone = false;
    this.exited = new Promise((r) => child.once("exit", () => r()));
    void this.exited.then(() => (gone = true));
    return eventually(
      `${this.bin} to listen`,
      () => {
        if (gone) throw new Error(`${this.bin} exited:\n${this.out}`);
        return /"url":"(http:\/\/[^"]+)"[^\n]*listening on/.exec(this.out)?.[1];
      },
      scaled(120_000),
    );
  }

  /** SIGTERM (a graceful stop), resolved when the process is gone. */
  async stop(): Promise<void> {
    this.child?.kill("SIGTERM");
    await this.exited;
  }
}

let metalDb: ScratchDatabase;
let mdDb: ScratchDatabase;
let dir: string;
let reader: { name: string; url: string };
let masterdataApi: Bin;
let metalApi: Bin;
let mdUrl: string;
let apiUrl: string;
let adminToken: string;
let fixture: PartitionFixture;

const client = <S extends DescService>(service: S, baseUrl: string, token?: string): Client<S> => createClient(service, createTransport({ baseUrl, protocol: "connect", token }));
/** The operator's client of metal-api (masterdata.v1 is on metal-api too, forwarded). */
const viaApi = <S extends DescService>(service: S, token = adminToken) => client(service, apiUrl, token);
/** A client of masterdata-api itself. */
const direct = <S extends DescService>(service: S, token?: string) => client(service, mdUrl, token);
const issue = async (subject: string, roles: Parameters<Client<typeof AdminTokens>["create"]>[0]["roles"]) => (await viaApi(AdminTokens).create({ subject, roles })).secret;

async function asAdmin<T>(fn: (c: pg.Client) => Promise<T>, url = TEST_DATABASE_URL): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  metalDb = await createScratchDatabase("mdapi_metal", { from: "metal" });
  // Empty: masterdata-api migrates its own database at start.
  mdDb = await createScratchDatabase("mdapi_md");
  dir = await mkdtemp(join(tmpdir(), "masterdata-api-"));
  await mkdir(join(dir, "home"));
  const base = { PATH: process.env.PATH, HOME: join(dir, "home"), LOG_LEVEL: "info" };
  const mdPort = await freePort();
  metalApi = new Bin("metal-api.js", {
    ...base,
    METAL_LISTEN: "127.0.0.1:0",
    METAL_CONSOLE_LISTEN: "127.0.0.1:0",
    METAL_DATA_DIR: join(dir, "metal"),
    DATABASE_URL: metalDb.url,
    MASTERDATA_URL: `http://127.0.0.1:${mdPort}`,
    METAL_DB_POOL_SIZE: "6",
  });
  // metal-api first: it makes the signing key masterdata-api verifies with (it needs no masterdata to start).
  apiUrl = await metalApi.start();
  adminToken = (await readFile(join(dir, "metal", "admin-token"), "utf8")).trim();

  // The least masterdata-api needs of the metal database: the public key and token columns, read only.
  const name = `mdapi_reader_${process.pid}_${randomBytes(4).toString("hex")}`;
  const password = randomBytes(12).toString("hex");
  await asAdmin(async (c) => {
    await c.query(`create role "${name}" login password '${password}'`);
  });
  await asAdmin(async (c) => {
    await c.query(`grant select (id, algorithm, public_jwk, created_at) on signing_keys to "${name}"`);
    await c.query(`grant select (id, subject, roles, expires_at, revoked_at) on tokens to "${name}"`);
  }, metalDb.url);
  const readerUrl = new URL(metalDb.url);
  readerUrl.username = name;
  readerUrl.password = password;
  reader = { name, url: readerUrl.toString() };

  masterdataApi = new Bin("masterdata-api.js", {
    ...base,
    MASTERDATA_LISTEN: `127.0.0.1:${mdPort}`,
    MASTERDATA_DATA_DIR: join(dir, "masterdata"),
    MASTERDATA_DATABASE_URL: mdDb.url,
    MASTERDATA_DB_POOL_SIZE: "4",
    METAL_DATABASE_URL: reader.url,
    METAL_DB_POOL_SIZE: "2",
  });
  mdUrl = await masterdataApi.start();
  expect(mdUrl).toBe(`http://127.0.0.1:${mdPort}`);
}, scaled(240_000));

afterAll(async () => {
  fixture?.stopAll();
  await Promise.allSettled([metalApi?.stop(), masterdataApi?.stop()]);
  await Promise.allSettled([metalDb?.drop(), mdDb?.drop()]);
  if (reader) await asAdmin((c) => c.query(`drop role if exists "${reader.name}"`)).catch(() => {});
  if (dir) await rm(dir, { recursive: true, force: true });
}, scaled(60_000));

describe("masterdata-api as its own process [heavy]", () => {
  it("refuses calls without a valid metal token, and applies the operator permissions metal-api applies", async () => {
    await expectCode(direct(MdTenants).find({}), Code.Unauthenticated);
    await expectCode(direct(MdTenants).find({}, { headers: { authorization: "Basic abc" } }), Code.Unauthenticated, "Bearer");
    await expectCode(direct(MdTenants, "not-a-jwt").find({}), Code.Unauthenticated, "not valid");
    // Signed by a key that is not the control plane's, naming its first key and issuer.
    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    const forged = await new SignJWT({}).setProtectedHeader({ alg: "EdDSA", kid: "k1" }).setIssuer("metal").setSubject("x").setJti("x").setExpirationTime("1h").sign(privateKey);
    await expectCode(direct(MdTenants, forged).find({}), Code.Unauthenticated, "not valid");
    // A forged service credential (metal-api's own kind) fares no better.
    const forgedService = await new SignJWT({})
      .setProtectedHeader({ alg: "EdDSA", kid: "k1", typ: "metal-service+jwt" })
      .setIssuer("metal-api")
      .setAudience("masterdata.v1")
      .setSubject("lab-api-1")
      .setIssuedAt()
      .setExpirationTime("1m")
      .sign(privateKey);
    await expectCode(direct(MdTenants, forgedService).create({ tenant: { meta: { id: "forged" }, name: "forged" } }), Code.Unauthenticated);

    // Revoked (this one was never seen by masterdata-api, so no cache stands in between).
    const revoked = await viaApi(AdminTokens).create({ subject: "revoked-admin", roles: { adminRole: AdminRole.ADMIN } });
    await viaApi(AdminTokens).revoke({ id: revoked.token!.id });
    await expectCode(direct(MdTenants, revoked.secret).find({}), Code.Unauthenticated, "revoked");

    // Roles: a tenant's token is not an operator's; a viewer reads but does not write.
    const tenantToken = await issue("some-tenant", { tenantRoles: { whoever: 3 } });
    await expectCode(direct(MdTenants, tenantToken).find({}), Code.PermissionDenied);
    const viewer = await issue("viewer", { adminRole: AdminRole.VIEWER });
    expect((await direct(MdTenants, viewer).find({})).tenants).toBeDefined();
    await expectCode(direct(MdTenants, viewer).create({ tenant: { meta: { id: "nope" }, name: "nope" } }), Code.PermissionDenied);
    // Operators reach masterdata-api directly for everything but a project delete, which needs metal-api's checks.
    await direct(MdTenants, adminToken).create({ tenant: { meta: { id: "direct" }, name: "made directly" } });
    await direct(MdProjects, adminToken).create({ project: { meta: { id: "direct-p" }, name: "p", tenantId: "direct" } });
    await expectCode(direct(MdProjects, adminToken).delete({ id: "direct-p" }), Code.FailedPrecondition, "through metal-api");
    // metal-api sees what was made directly (one masterdata, two doors) and deletes it.
    expect((await viaApi(MdProjects).get({ id: "direct-p" })).project?.tenantId).toBe("direct");
    await viaApi(MdProjects).delete({ id: "direct-p" });
    await expectCode(direct(MdProjects, adminToken).get({ id: "direct-p" }), Code.NotFound);

    // The refusals were counted; health is public.
    const metrics = await (await fetch(`${mdUrl}/metrics`)).text();
    expect(metrics).toMatch(/metal_rpc_handled_total\{service="masterdata\.v1\.TenantService",method="Find",code="Unauthenticated"\} [1-9]/);
    expect((await direct(Health).check({ service: "" })).status).toBe(Serving.SERVING);
    // Nothing of the refused calls' tokens in the log.
    expect(masterdataApi.out).not.toContain(revoked.secret);
    expect(masterdataApi.out).not.toContain(forged);
  });

  it("runs the tenancy flow through metal-api: metalctl makes a tenant and a project, members are added, all of it in masterdata-api's database", async () => {
    const m = cli({ METALCTL_API_URL: apiUrl, METALCTL_API_TOKEN: adminToken });
    const tenant = await m.run(["tenant", "create", "--id", "acme", "--name", "Acme", "--project-quota", "3"]);
    expect(tenant.code, tenant.stderr).toBe(0);
    const project = await m.run(["project", "create", "--id", "acme-web", "--name", "web", "--tenant", "acme", "--machine-quota", "2"]);
    expect(project.code, project.stderr).toBe(0);
    const listed = await m.run(["project", "list", "--tenant", "acme", "-o", "json"]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout).map((p: { meta: { id: string } }) => p.meta.id)).toEqual(["acme-web"]);

    // Members are tenants: partner joins acme, and acme's project.
    expect((await m.run(["tenant", "create", "--id", "partner", "--name", "Partner"])).code).toBe(0);
    await viaApi(TenantMemberService).create({ tenantMember: { tenantId: "acme", memberId: "partner", role: TenantMemberRole.VIEWER } });
    await viaApi(ProjectMemberService).create({ projectMember: { projectId: "acme-web", tenantId: "partner", role: ProjectMemberRole.EDITOR } });
    // Tenant self-service on metal-api (metal.api.v1), kept in masterdata-api: alice owns acme and invites bob; bob accepts.
    for (const user of ["alice", "bob"]) await viaApi(MdTenants).create({ tenant: { meta: { id: user }, name: user } });
    await viaApi(TenantMemberService).create({ tenantMember: { tenantId: "acme", memberId: "alice", role: TenantMemberRole.OWNER } });
    const alice = (await viaApi(AdminTokens).create({ subject: "alice", roles: { tenantRoles: { acme: TenantRole.OWNER } } })).secret;
    const bob = (await viaApi(AdminTokens).create({ subject: "bob", roles: {} })).secret;
    const { secret } = await viaApi(ApiTenants, alice).invite({ tenant: "acme", role: TenantRole.VIEWER });
    expect(await viaApi(ApiTenants, bob).inviteAccept({ secret })).toMatchObject({ tenant: "acme", role: TenantRole.VIEWER });
    await expectCode(viaApi(ApiTenants, bob).inviteAccept({ secret }), Code.NotFound);
    // Validation and conflicts come back from masterdata-api as they are.
    await expectCode(viaApi(ProjectMemberService).create({ projectMember: { projectId: "acme-web", tenantId: "partner", role: ProjectMemberRole.EDITOR } }), Code.AlreadyExists);
    await expectCode(viaApi(MdProjects).get({ id: "no-such-project" }), Code.NotFound);

    // Only masterdata-api's database has it: metal-api never opened one.
    const rows = await asAdmin(async (c) => (await c.query("select id, tenant_id from projects order by id")).rows, mdDb.url);
    expect(rows).toContainEqual({ id: "acme-web", tenant_id: "acme" });
    const members = await asAdmin(
      async (c) => (await c.query("select tenant_id || '>' || member_id as m from tenant_members union all select project_id || '>' || tenant_id from project_members order by 1")).rows,
      mdDb.url,
    );
    expect(members.map((r) => r.m).sort()).toEqual(["acme-web>partner", "acme>alice", "acme>bob", "acme>partner"]);
    const metalTables = await asAdmin(async (c) => (await c.query("select count(*)::int as n from information_schema.tables where table_name = 'projects'")).rows[0].n, metalDb.url);
    expect(metalTables).toBe(0);

    // A tenant token on the project works on metal-api: the project's tenant is looked up in masterdata-api.
    const owner = await issue("alice", { tenantRoles: { acme: TenantRole.OWNER } });
    expect((await viaApi(MachineService, owner).list({ project: "acme-web" })).machines).toEqual([]);
    await expectCode(viaApi(MachineService, owner).list({ project: "direct" }), Code.PermissionDenied);
  });

  it("runs the allocation flow: partition, a registered machine waiting, allocate, project delete refused while in use, free, project delete ends its tokens", async () => {
    // The partition fixture plays metal-hammer over the API, as the lab's simulated machines do.
    const server = {
      adminToken,
      client: <S extends DescService>(s: S, token?: string) => viaApi(s, token),
      grpcClient: <S extends DescService>(s: S, token?: string) => createClient(s, createTransport({ baseUrl: apiUrl, token })),
    } as unknown as TestServer;
    fixture = await setUpPartition(server);
    const editor = await issue("pa-editor", { projectRoles: { pa: ProjectRole.EDITOR } });
    const hammer = await fixture.bootMachine("r1");
    const { machine } = await viaApi(MachineService, editor).create({ project: "pa", partition: "p1", size: "s1", image: "debian-12", name: "web-1", networks: [fixture.primary.pa] });
    expect(machine?.id).toBe(hammer.id);
    expect((await hammer.allocation)?.image).toBe("debian-12.0.20250101");
    // The project quota (machine: 2) is masterdata-api's, read by metal-api.
    expect((await viaApi(MdProjects).get({ id: "pa" })).project?.quotas?.machine?.max).toBe(2);

    // metal-api checks its own database before it has masterdata-api delete the project: an operator's delete and a tenant owner's alike.
    await expectCode(viaApi(MdProjects).delete({ id: "pa" }), Code.FailedPrecondition, "1 machine");
    const tOwner = await issue("t-owner", { tenantRoles: { t: TenantRole.OWNER } });
    await expectCode(viaApi(ApiProjects, tOwner).delete({ project: "pa" }), Code.FailedPrecondition, "1 machine");
    expect((await direct(MdProjects, adminToken).get({ id: "pa" })).project).toBeDefined();

    const freed = await viaApi(MachineService, editor).delete({ id: hammer.id, project: "pa" });
    expect(freed.machine?.allocation).toBeUndefined();
    await viaApi(NetworkService, editor).delete({ id: fixture.primary.pa, project: "pa" });
    await viaApi(MdProjects).delete({ id: "pa" });
    await expectCode(direct(MdProjects, adminToken).get({ id: "pa" }), Code.NotFound);
    // The editor's only grant was on pa: the token is revoked with the project.
    await expectCode(viaApi(UserService, editor).get({}), Code.Unauthenticated);
  });

  it("keeps its data across a restart; while it is down metal-api answers Unavailable where it needs masterdata and reports it degraded", async () => {
    await masterdataApi.stop();
    expect(masterdataApi.out).toContain("stopped");
    await expectCode(viaApi(MdTenants).get({ id: "acme" }), Code.Unavailable, "masterdata is not reachable");
    const owner = await issue("alice-2", { tenantRoles: { acme: TenantRole.OWNER } });
    await expectCode(viaApi(MachineService, owner).list({ project: "acme-web" }), Code.Unavailable, "masterdata is not reachable");
    // Degraded, still serving: probes keep metal-api in service for the partitions.
    const health = await viaApi(HealthService).get({});
    expect(health.status).toBe(HealthStatus.DEGRADED);
    expect(health.services.find((s) => s.name === "masterdata")).toMatchObject({
      status: HealthStatus.DEGRADED,
      message: "masterdata-api does not answer: masterdata is not reachable at the moment; try again",
    });
    expect((await viaApi(Health).check({ service: "" })).status).toBe(Serving.SERVING);
    // Partition traffic does not depend on masterdata: an operator still lists tokens.
    expect((await viaApi(AdminTokens).list({})).tokens.length).toBeGreaterThan(0);

    await masterdataApi.start();
    expect((await viaApi(MdTenants).get({ id: "acme" })).tenant?.name).toBe("Acme");
    expect((await viaApi(ProjectMemberService).find({ projectId: "acme-web" })).projectMembers.map((m) => m.tenantId)).toEqual(["partner"]);
    expect((await viaApi(MachineService, owner).list({ project: "acme-web" })).machines).toEqual([]);
    await eventually("metal-api to report masterdata healthy", async () => (await viaApi(HealthService).get({})).status === HealthStatus.HEALTHY);
  });
});
