import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PermissionSchema, Visibility } from "../../../gen/metal/api/v1/common_pb.js";
import { authorize } from "../../../server/domain/authorize.js";
import { excessGrants } from "../../../server/domain/grant.js";
import { AdminRole, noRoles, type Principal, ProjectRole, type Roles, TenantRole } from "../../../server/domain/roles.js";

const principal = (roles: Partial<Roles>): Principal => ({
  tokenId: "t",
  subject: "alice",
  expiresAt: new Date(Date.now() + 3600_000),
  roles: { ...noRoles(), ...roles },
});
const perm = (p: Parameters<typeof create<typeof PermissionSchema>>[1]) => create(PermissionSchema, p);

const publicP = perm({ visibility: Visibility.PUBLIC });
const authed = perm({ visibility: Visibility.AUTHENTICATED });
const adminWrite = perm({ adminRole: AdminRole.ADMIN });
const adminRead = perm({ adminRole: AdminRole.VIEWER });
const projectRead = perm({ projectRole: ProjectRole.VIEWER });
const projectWrite = perm({ projectRole: ProjectRole.EDITOR });
const tenantOwner = perm({ tenantRole: TenantRole.OWNER });
const infra = perm({ infra: true });
const undeclared = perm({});

describe("authorize", () => {
  const admin = principal({ adminRole: AdminRole.ADMIN });
  const viewer = principal({ adminRole: AdminRole.VIEWER });
  const editorP1 = principal({ projectRoles: { p1: ProjectRole.EDITOR } });
  const viewerP1 = principal({ projectRoles: { p1: ProjectRole.VIEWER } });
  const tenantEditor = principal({ tenantRoles: { t1: TenantRole.EDITOR } });
  const infraA = principal({ infraPartition: "a" });

  it.each([
    ["public without token", undefined, publicP, {}, true],
    ["authenticated without token", undefined, authed, {}, "unauthenticated"],
    ["authenticated with any token", editorP1, authed, {}, true],
    ["admin write by admin", admin, adminWrite, {}, true],
    ["admin write by operator viewer", viewer, adminWrite, {}, "permission_denied"],
    ["admin read by operator viewer", viewer, adminRead, {}, true],
    ["admin read by project editor", editorP1, adminRead, {}, "permission_denied"],
    ["undeclared method by operator viewer", viewer, undeclared, {}, "permission_denied"],
    ["undeclared method by admin", admin, undeclared, {}, true],
    ["project read by operator viewer", viewer, projectRead, { project: "p9" }, true],
    ["project write by operator viewer", viewer, projectWrite, { project: "p9" }, "permission_denied"],
    ["project write by its editor", editorP1, projectWrite, { project: "p1" }, true],
    ["project write by its viewer", viewerP1, projectWrite, { project: "p1" }, "permission_denied"],
    ["project write by editor of another project", editorP1, projectWrite, { project: "p2" }, "permission_denied"],
    ["project method without project in request", editorP1, projectRead, {}, "permission_denied"],
    ["tenant owner method by tenant editor", tenantEditor, tenantOwner, { tenant: "t1" }, "permission_denied"],
    ["infra of own partition", infraA, infra, { partition: "a" }, true],
    ["infra of other partition", infraA, infra, { partition: "b" }, "permission_denied"],
    ["infra method by project editor", editorP1, infra, { partition: "a" }, "permission_denied"],
  ] as const)("%s", (_name, who, p, target, expected) => {
    const d = authorize(who, p, target);
    if (expected === true) expect(d).toEqual({ allow: true });
    else expect(d).toMatchObject({ allow: false, code: expected });
  });

  it("asks for the project's tenant when only tenant roles could grant it, then applies them", () => {
    expect(authorize(tenantEditor, projectWrite, { project: "p5" })).toMatchObject({ code: "needs_project_tenant" });
    expect(authorize(tenantEditor, projectWrite, { project: "p5" }, "t1")).toEqual({ allow: true });
    expect(authorize(tenantEditor, projectWrite, { project: "p5" }, "t2")).toMatchObject({ code: "permission_denied" });
  });

  it("names the missing role in the message", () => {
    const d = authorize(viewerP1, projectWrite, { project: "p1" });
    expect(d).toMatchObject({ message: 'permission denied: needs project editor of "p1"' });
  });
});

describe("excessGrants", () => {
  it("lets an operator admin grant anything", () => {
    const admin = principal({ adminRole: AdminRole.ADMIN });
    expect(excessGrants(admin, { ...noRoles(), adminRole: AdminRole.ADMIN, infraPartition: "x" }, {})).toEqual([]);
  });

  it("refuses roles above the creator's, naming each", () => {
    const creator = principal({ adminRole: AdminRole.VIEWER, projectRoles: { p1: ProjectRole.EDITOR } });
    const problems = excessGrants(creator, { adminRole: AdminRole.ADMIN, projectRoles: { p1: ProjectRole.OWNER, p2: ProjectRole.VIEWER }, tenantRoles: { t: TenantRole.VIEWER }, infraPartition: "a" }, {});
    expect(problems).toHaveLength(5);
    expect(problems.join("\n")).toContain('roles.project_roles["p1"]: owner exceeds your editor');
    expect(problems.join("\n")).toContain('roles.project_roles["p2"]: viewer exceeds your none');
  });

  it("allows equal or lower roles, tenant roles counting for their projects", () => {
    const creator = principal({ projectRoles: { p1: ProjectRole.EDITOR }, tenantRoles: { t1: TenantRole.OWNER } });
    const requested = { ...noRoles(), projectRoles: { p1: ProjectRole.VIEWER, p7: ProjectRole.OWNER }, tenantRoles: { t1: TenantRole.EDITOR } };
    expect(excessGrants(creator, requested, { p7: "t1" })).toEqual([]);
    expect(excessGrants(creator, requested, { p7: "t2" })).toHaveLength(1);
  });
});
