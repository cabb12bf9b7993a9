import { describe, expect, it } from "vitest";
import { ProjectRole, TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import type { ConsoleMachine } from "../../server/console/access.js";
import { browserOutsiderRefusal, decideBrowserConsoleAccess } from "../../server/console/browser-access.js";
import { AdminRole, noRoles, type Principal, type Roles } from "../../server/domain/roles.js";

const principal = (roles: Partial<Roles>): Principal => ({ tokenId: "t", subject: "someone", expiresAt: new Date(Date.now() + 60_000), roles: { ...noRoles(), ...roles } });
const m = (allocation: ConsoleMachine["allocation"]): ConsoleMachine => ({ id: "m1", partition: "p1", allocation });
const allocatedAt = new Date("2026-01-02T03:04:05.678Z");
const alloc = (role: "machine" | "firewall", project = "pb") => ({ uuid: "a1", project, role, sshKeys: [], createdAt: allocatedAt });
const editor = principal({ projectRoles: { pb: ProjectRole.EDITOR } });
const admin = principal({ adminRole: AdminRole.ADMIN });

describe("decideBrowserConsoleAccess (the SSH console's rules, a project editor instead of a key)", () => {
  it("an editor or owner of the allocation's project gets in and sees output since the allocation began", () => {
    expect(decideBrowserConsoleAccess(m(alloc("machine")), "m1", "pb", editor)).toEqual({ allow: true, admin: false, partition: "p1", allocationUuid: "a1", outputSince: allocatedAt });
    expect(decideBrowserConsoleAccess(m(alloc("machine")), "m1", "pb", principal({ projectRoles: { pb: ProjectRole.OWNER } })).allow).toBe(true);
  });

  it("a viewer (who needs one of the allocation's keys over SSH) is refused, whatever the machine", () => {
    const viewer = principal({ projectRoles: { pb: ProjectRole.VIEWER } });
    const answers = [m(alloc("machine")), undefined, m(null)].map((machine) => decideBrowserConsoleAccess(machine, "m1", "pb", viewer));
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(answers[0]).toMatchObject({ allow: false, code: "permission_denied", message: expect.stringContaining('needs project editor of "pb"') });
    // An operator viewer is no operator admin here either.
    expect(decideBrowserConsoleAccess(m(alloc("machine")), "m1", "pb", principal({ adminRole: AdminRole.VIEWER }))).toMatchObject({ allow: false, code: "permission_denied" });
  });

  it("a tenant editor counts for the tenant's projects only", () => {
    const tenantEditor = principal({ tenantRoles: { t: TenantRole.EDITOR } });
    expect(decideBrowserConsoleAccess(m(alloc("machine")), "m1", "pb", tenantEditor, "t").allow).toBe(true);
    expect(decideBrowserConsoleAccess(m(alloc("machine")), "m1", "pb", tenantEditor, "other")).toMatchObject({ allow: false, code: "permission_denied" });
  });

  it("outsiders get one answer, NotFound in the words of their request, for unknown, free, another project's and partitionless machines", () => {
    const answers = [undefined, m(null), m(alloc("machine", "pa")), m(alloc("firewall", "pa")), { id: "m1", partition: null, allocation: alloc("machine") }].map((machine) =>
      decideBrowserConsoleAccess(machine, "M1", "pb", editor),
    );
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(answers[0]).toEqual({ allow: false, code: "not_found", message: browserOutsiderRefusal("M1", "pb") });
    expect(answers[0]).toMatchObject({ message: 'machine "M1" not found in project "pb"' });
  });

  it("an editor of the machine's project who names another project is an outsider there", () => {
    const both = principal({ projectRoles: { pb: ProjectRole.EDITOR, pa: ProjectRole.EDITOR } });
    expect(decideBrowserConsoleAccess(m(alloc("machine")), "m1", "pa", both)).toMatchObject({ allow: false, code: "not_found" });
  });

  it("a firewall of the project is for operator admins only, and the editor is told so", () => {
    expect(decideBrowserConsoleAccess(m(alloc("firewall")), "m1", "pb", editor)).toMatchObject({ allow: false, code: "permission_denied", message: expect.stringContaining("is a firewall") });
  });

  it("operator admins open every console (free machines and firewalls too) and get precise refusals", () => {
    expect(decideBrowserConsoleAccess(m(alloc("firewall", "pa")), "m1", "", admin)).toMatchObject({ allow: true, admin: true, outputSince: allocatedAt });
    expect(decideBrowserConsoleAccess(m(null), "m1", "", admin)).toEqual({ allow: true, admin: true, partition: "p1", allocationUuid: undefined, outputSince: undefined });
    expect(decideBrowserConsoleAccess(undefined, "m1", "", admin)).toMatchObject({ allow: false, code: "not_found", message: 'machine "m1" not found' });
    expect(decideBrowserConsoleAccess({ id: "m1", partition: null, allocation: null }, "m1", "", admin)).toMatchObject({
      allow: false,
      code: "failed_precondition",
      message: expect.stringContaining("no partition"),
    });
  });

  it("a machine credential never opens a console", () => {
    const machine = { ...principal({ projectRoles: { pb: ProjectRole.EDITOR } }), machine: { id: "m1", partition: "p1", generation: 1, mac: "", superseded: false } };
    expect(decideBrowserConsoleAccess(m(alloc("machine")), "m1", "pb", machine)).toMatchObject({ allow: false, code: "permission_denied" });
  });
});
