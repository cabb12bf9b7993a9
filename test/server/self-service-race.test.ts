import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvitationService, InvitationTarget, MembershipRole } from "../../gen/masterdata/v1/invitation_pb.js";
import { MembershipService } from "../../gen/masterdata/v1/membership_pb.js";
import { invitations } from "../../server/masterdata/db/schema/index.js";
import { createMasterdataRoutes } from "../../server/masterdata/routes.js";
import { expectCode } from "../helpers/expect.js";
import { type MasterdataHarness, openMasterdataHarness } from "./masterdata/harness.js";

/**
 * Issue 19, masterdata's half of self-service on real PostgreSQL: the
 * last-owner rule holds under concurrent changes (each call its own
 * transaction on its own pooled connection), invitations are single use,
 * stored hashed and expire.
 */
let h: MasterdataHarness;
let inv: ReturnType<typeof createClient<typeof InvitationService>>;
let mem: ReturnType<typeof createClient<typeof MembershipService>>;
let counter = 0;
const fresh = (p: string) => `${p}${++counter}`;

beforeAll(async () => {
  h = await openMasterdataHarness();
  const transport = createRouterTransport(createMasterdataRoutes({ db: h.database.db, projectUsage: async () => [] }));
  inv = createClient(InvitationService, transport);
  mem = createClient(MembershipService, transport);
});
afterAll(async () => {
  await h?.close();
});

async function tenantWithOwners(n: number): Promise<{ tenant: string; owners: string[] }> {
  const tenant = fresh("org");
  await h.tenants.create({ tenant: { meta: { id: tenant }, name: tenant } });
  const owners: string[] = [];
  for (let i = 0; i < n; i++) {
    const user = fresh("user");
    await h.tenants.create({ tenant: { meta: { id: user }, name: user } });
    await h.tenantMembers.create({ tenantMember: { tenantId: tenant, memberId: user, role: 3 } });
    owners.push(user);
  }
  return { tenant, owners };
}

const outcome = (r: PromiseSettledResult<unknown>) => (r.status === "fulfilled" ? "ok" : Code[ConnectError.from(r.reason).code]);

describe("the last owner, under concurrency", () => {
  it("of two owners leaving a tenant at the same moment, exactly one succeeds (20 rounds)", async () => {
    for (let round = 0; round < 20; round++) {
      const { tenant, owners } = await tenantWithOwners(2);
      const results = await Promise.allSettled(owners.map((o) => mem.remove({ target: InvitationTarget.TENANT, targetId: tenant, memberId: o })));
      expect(results.map(outcome).sort()).toEqual(["FailedPrecondition", "ok"]);
      expect((await h.tenantMembers.find({ tenantId: tenant })).tenantMembers.map((m) => m.role)).toEqual([3]);
    }
  });

  it("of two owners demoting each other at the same moment, exactly one succeeds (20 rounds)", async () => {
    for (let round = 0; round < 20; round++) {
      const { tenant, owners } = await tenantWithOwners(2);
      const results = await Promise.allSettled(owners.map((o) => mem.setRole({ target: InvitationTarget.TENANT, targetId: tenant, memberId: o, role: MembershipRole.VIEWER })));
      expect(results.map(outcome).sort()).toEqual(["FailedPrecondition", "ok"]);
      expect((await h.tenantMembers.find({ tenantId: tenant })).tenantMembers.map((m) => m.role).sort()).toEqual([1, 3]);
    }
  });

  it("a project of a tenant without owners keeps its last direct owner, also when two leave at once", async () => {
    for (let round = 0; round < 10; round++) {
      const tenant = fresh("org");
      await h.tenants.create({ tenant: { meta: { id: tenant }, name: tenant } });
      const project = fresh("proj");
      await h.projects.create({ project: { meta: { id: project }, name: project, tenantId: tenant } });
      const users = [fresh("user"), fresh("user")];
      for (const u of users) {
        await h.tenants.create({ tenant: { meta: { id: u }, name: u } });
        await h.projectMembers.create({ projectMember: { projectId: project, tenantId: u, role: 3 } });
      }
      const results = await Promise.allSettled(users.map((u) => mem.remove({ target: InvitationTarget.PROJECT, targetId: project, memberId: u })));
      expect(results.map(outcome).sort()).toEqual(["FailedPrecondition", "ok"]);
    }
  });

  it("a project's last direct owner may leave while its tenant has an owner (the tenant's owners manage it)", async () => {
    const { tenant } = await tenantWithOwners(1);
    const project = fresh("proj");
    await h.projects.create({ project: { meta: { id: project }, name: project, tenantId: tenant } });
    const u = fresh("user");
    await h.tenants.create({ tenant: { meta: { id: u }, name: u } });
    await h.projectMembers.create({ projectMember: { projectId: project, tenantId: u, role: 3 } });
    await mem.remove({ target: InvitationTarget.PROJECT, targetId: project, memberId: u });
    expect((await h.projectMembers.find({ projectId: project })).projectMembers).toEqual([]);
  });

  it("refuses the last owner's removal and demotion, lets a viewer go and answers NotFound for a non-member", async () => {
    const { tenant, owners } = await tenantWithOwners(1);
    await expectCode(mem.remove({ target: InvitationTarget.TENANT, targetId: tenant, memberId: owners[0]! }), Code.FailedPrecondition, "last owner");
    await expectCode(mem.setRole({ target: InvitationTarget.TENANT, targetId: tenant, memberId: owners[0]!, role: MembershipRole.EDITOR }), Code.FailedPrecondition, "last owner");
    const r = await mem.setRole({ target: InvitationTarget.TENANT, targetId: tenant, memberId: owners[0]!, role: MembershipRole.OWNER });
    expect(r.previousRole).toBe(MembershipRole.OWNER);
    await expectCode(mem.remove({ target: InvitationTarget.TENANT, targetId: tenant, memberId: "nobody" }), Code.NotFound);
    await expectCode(mem.remove({ target: InvitationTarget.TENANT, targetId: "no-such-tenant", memberId: owners[0]! }), Code.NotFound);
  });
});

describe("invitations", () => {
  it("are stored hashed, used up by the first of two concurrent acceptances, and then not found", async () => {
    const { tenant } = await tenantWithOwners(1);
    const users = [fresh("user"), fresh("user")];
    for (const u of users) await h.tenants.create({ tenant: { meta: { id: u }, name: u } });
    const { invitation, secret } = await inv.create({ target: InvitationTarget.TENANT, targetId: tenant, role: MembershipRole.EDITOR, createdBy: "test" });
    expect(secret).toMatch(/^inv_[A-Za-z0-9_-]{43}$/);
    const [row] = await h.database.db.select().from(invitations).where(eq(invitations.id, invitation!.id));
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(row!.secretHash).toMatch(/^[0-9a-f]{64}$/);

    const results = await Promise.allSettled(users.map((u) => inv.accept({ secret, memberId: u })));
    expect(results.map(outcome).sort()).toEqual(["NotFound", "ok"]);
    expect((await h.tenantMembers.find({ tenantId: tenant })).tenantMembers.filter((m) => m.role === 2)).toHaveLength(1);
    await expectCode(inv.get({ secret }), Code.NotFound);
    await expectCode(inv.accept({ secret, memberId: users[0]! }), Code.NotFound);
  });

  it("expire: an expired invitation is not found, not listed and not accepted", async () => {
    const { tenant } = await tenantWithOwners(1);
    const u = fresh("user");
    await h.tenants.create({ tenant: { meta: { id: u }, name: u } });
    const { invitation, secret } = await inv.create({ target: InvitationTarget.TENANT, targetId: tenant, role: MembershipRole.VIEWER, createdBy: "test", expiresIn: { seconds: 3600n } });
    const expires = Number(invitation!.expiresTime!.seconds) - Number(invitation!.createdTime!.seconds);
    expect(expires).toBe(3600);
    expect((await inv.find({ target: InvitationTarget.TENANT, targetId: tenant })).invitations.map((i) => i.id)).toEqual([invitation!.id]);
    await h.database.db.update(invitations).set({ expiresAt: sql`now() - interval '1 second'` }).where(eq(invitations.id, invitation!.id));
    await expectCode(inv.get({ secret }), Code.NotFound);
    await expectCode(inv.accept({ secret, memberId: u }), Code.NotFound);
    expect((await inv.find({ target: InvitationTarget.TENANT, targetId: tenant })).invitations).toEqual([]);
    await expectCode(inv.delete({ id: invitation!.id, target: InvitationTarget.TENANT, targetId: tenant }), Code.NotFound);
  });

  it("bounds the lifetime and needs an existing target; accepting twice as a member is AlreadyExists and keeps the invitation", async () => {
    const { tenant, owners } = await tenantWithOwners(1);
    await expectCode(inv.create({ target: InvitationTarget.TENANT, targetId: tenant, role: 1, createdBy: "t", expiresIn: { seconds: 59n } }), Code.InvalidArgument, "at least 1 minute");
    await expectCode(inv.create({ target: InvitationTarget.TENANT, targetId: tenant, role: 1, createdBy: "t", expiresIn: { seconds: 31n * 86400n } }), Code.InvalidArgument, "at most 30 days");
    await expectCode(inv.create({ target: InvitationTarget.TENANT, targetId: tenant, role: 0, createdBy: "t" }), Code.InvalidArgument, "role");
    await expectCode(inv.create({ target: InvitationTarget.PROJECT, targetId: "no-such-project", role: 1, createdBy: "t" }), Code.NotFound);
    const { secret } = await inv.create({ target: InvitationTarget.TENANT, targetId: tenant, role: 1, createdBy: "t" });
    await expectCode(inv.accept({ secret, memberId: owners[0]! }), Code.AlreadyExists);
    expect((await inv.get({ secret })).invitation?.tenantId).toBe(tenant);
    await expectCode(inv.accept({ secret, memberId: "no-such-user" }), Code.FailedPrecondition, "sign in");
    await expectCode(inv.accept({ secret, memberId: owners[0]!, target: InvitationTarget.PROJECT }), Code.NotFound);
  });
  it("an owner removed or demoted leaves no invitation behind to come back with (the tenant's and its projects')", async () => {
    const { tenant, owners } = await tenantWithOwners(3);
    const [a, b, c] = owners as [string, string, string];
    const project = fresh("proj");
    await h.projects.create({ project: { meta: { id: project }, name: project, tenantId: tenant } });
    const byA = await inv.create({ target: InvitationTarget.TENANT, targetId: tenant, role: MembershipRole.OWNER, createdBy: a });
    const byAProject = await inv.create({ target: InvitationTarget.PROJECT, targetId: project, role: MembershipRole.OWNER, createdBy: a });
    const byB = await inv.create({ target: InvitationTarget.TENANT, targetId: tenant, role: MembershipRole.OWNER, createdBy: b });
    const byC = await inv.create({ target: InvitationTarget.TENANT, targetId: tenant, role: MembershipRole.VIEWER, createdBy: c });

    await mem.remove({ target: InvitationTarget.TENANT, targetId: tenant, memberId: a });
    await expectCode(inv.accept({ secret: byA.secret, memberId: a }), Code.NotFound);
    await expectCode(inv.accept({ secret: byAProject.secret, memberId: a }), Code.NotFound);

    await mem.setRole({ target: InvitationTarget.TENANT, targetId: tenant, memberId: b, role: MembershipRole.EDITOR });
    await expectCode(inv.get({ secret: byB.secret }), Code.NotFound);
    // A remaining owner's invitation stays.
    expect((await inv.get({ secret: byC.secret })).invitation?.createdBy).toBe(c);
  });

  it("an acceptance racing the inviter's removal neither deadlocks nor outlives it (10 rounds)", async () => {
    for (let round = 0; round < 10; round++) {
      const { tenant, owners } = await tenantWithOwners(2);
      const invitee = fresh("user");
      await h.tenants.create({ tenant: { meta: { id: invitee }, name: invitee } });
      const { secret } = await inv.create({ target: InvitationTarget.TENANT, targetId: tenant, role: MembershipRole.OWNER, createdBy: owners[0]! });
      const [accepted, removed] = await Promise.allSettled([inv.accept({ secret, memberId: invitee }), mem.remove({ target: InvitationTarget.TENANT, targetId: tenant, memberId: owners[0]! })]);
      expect(outcome(removed)).toBe("ok");
      expect(["ok", "NotFound"]).toContain(outcome(accepted));
      await expectCode(inv.get({ secret }), Code.NotFound);
    }
  });
});
