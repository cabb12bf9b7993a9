import { beforeAll, describe, expect, it } from "vitest";
import { TenantMemberService as MdTenantMembers } from "../../gen/masterdata/v1/tenant_member_pb.js";
import { TenantService as MdTenants } from "../../gen/masterdata/v1/tenant_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { cli } from "./run-cli.js";

/** Issue 19: tenant and project self-service from metalctl (docs/tenancy.md), as a tenant owner and an invitee. */
let server: TestServer;
const m = cli();
let alice: string;
let bob: string;
const as = (token: string, argv: string[]) => m.run(argv, { METALCTL_API_URL: server.url, METALCTL_API_TOKEN: token });
const secretOf = (stdout: string) => /^secret: (\S+)$/m.exec(stdout)?.[1] ?? "";

beforeAll(async () => {
  server = await startTestServer();
  const admin = server.adminToken;
  await server.client(MdTenants, admin).create({ tenant: { meta: { id: "acme" }, name: "ACME Corp", quotas: { machine: { max: 8 } } } });
  for (const u of ["alice", "bob"]) await server.client(MdTenants, admin).create({ tenant: { meta: { id: u }, name: u } });
  await server.client(MdTenantMembers, admin).create({ tenantMember: { tenantId: "acme", memberId: "alice", role: 3 } });
  const mint = async (subject: string, tenantRoles: Record<string, TenantRole>) => (await server.client(AdminTokens, admin).create({ subject, roles: { tenantRoles } })).secret;
  alice = await mint("alice", { acme: TenantRole.OWNER, alice: TenantRole.OWNER });
  bob = await mint("bob", { bob: TenantRole.OWNER });
});

describe("metalctl tenant and project self-service", () => {
  it("invites into a tenant, accepts, lists members, changes roles and keeps the last owner", async () => {
    const invited = await as(alice, ["tenant", "invite", "acme", "--role", "editor", "--expires-in", "2d"]);
    expect(invited.stderr).toBe("");
    const secret = secretOf(invited.stdout);
    expect(secret).toMatch(/^inv_/);
    expect(invited.stdout).toMatch(/acme\s+ACME Corp\s+editor/);

    const shown = await as(bob, ["tenant", "invite-get", secret, "-o", "json"]);
    expect(JSON.parse(shown.stdout)).toMatchObject({ tenant: "acme", tenantName: "ACME Corp", role: "TENANT_ROLE_EDITOR" });
    const pending = await as(alice, ["tenant", "invites", "acme", "-o", "yaml"]);
    expect(pending.stdout).toContain("TENANT_ROLE_EDITOR");
    expect(pending.stdout).not.toContain(secret);

    const accepted = await as(bob, ["tenant", "invite-accept", secret]);
    expect(accepted.code).toBe(0);
    expect(accepted.stdout).toMatch(/acme\s+ACME Corp\s+editor/);
    expect(accepted.stderr).toContain("next sign-in");
    const again = await as(bob, ["tenant", "invite-accept", secret]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain("not found");

    expect((await as(alice, ["tenant", "members", "acme"])).stdout).toMatch(/alice\s+owner[\s\S]*bob\s+editor|bob\s+editor[\s\S]*alice\s+owner/);
    expect((await as(alice, ["tenant", "member-update", "acme", "bob", "--role", "viewer"])).stdout).toMatch(/bob\s+viewer/);
    const leave = await as(alice, ["tenant", "leave", "acme"]);
    expect(leave.code).not.toBe(0);
    expect(leave.stderr).toContain("last owner");
    const who = await as(bob, ["whoami"]);
    expect(who.stdout).toContain("tenants: acme:viewer");

    // The operator's commands fall back to the member's view.
    expect((await as(alice, ["tenant", "list"])).stdout).toMatch(/acme\s+ACME Corp/);
    expect(JSON.parse((await as(alice, ["tenant", "describe", "acme", "-o", "json"])).stdout)).toMatchObject({ meta: { id: "acme" }, name: "ACME Corp" });
  });

  it("a tenant owner creates a project within the tenant's quotas and invites into it", async () => {
    const created = await as(alice, ["project", "create", "--tenant", "acme", "--name", "web", "--machine-quota", "4", "-o", "json"]);
    expect(created.stderr).toBe("");
    const [project] = JSON.parse(created.stdout) as { meta: { id: string }; tenantId: string; quotas: { machine: { max: number } } }[];
    expect(project).toMatchObject({ tenantId: "acme", quotas: { machine: { max: 4 } } });
    const over = await as(alice, ["project", "create", "--tenant", "acme", "--name", "big", "--machine-quota", "9"]);
    expect(over.code).not.toBe(0);
    expect(over.stderr).toContain("exceeds the tenant's limit of 8");
    const denied = await as(bob, ["project", "create", "--tenant", "acme", "--name", "mine"]);
    expect(denied.code).not.toBe(0);

    const id = project!.meta.id;
    const invited = await as(alice, ["project", "invite", "--project", id, "--role", "editor"]);
    const accepted = await as(bob, ["project", "invite-accept", secretOf(invited.stdout)]);
    expect(accepted.stdout).toMatch(/web\s+editor/);
    const members = (await as(alice, ["project", "members", "--project", id])).stdout;
    expect(members).toMatch(/alice\s+owner\s+tenant/);
    expect(members).toMatch(/bob\s+editor\s+project/);
    expect((await as(bob, ["whoami"])).stdout).toContain(`${id}:editor`);
    expect((await as(alice, ["project", "list", "--tenant", "acme"])).stdout).toContain(id);
    expect((await as(alice, ["project", "member-remove", "--project", id, "bob"])).code).toBe(0);
    expect((await as(alice, ["project", "invites", "--project", id, "-o", "json"])).stdout.trim()).toBe("[]");
  });
});
