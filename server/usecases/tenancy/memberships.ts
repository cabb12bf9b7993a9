import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Project as MdProject } from "../../../gen/masterdata/v1/project_pb.js";
import type { Tenant as MdTenant } from "../../../gen/masterdata/v1/tenant_pb.js";
import { effectiveMembership, isMemberId, type RoleLevel } from "../../domain/tenancy.js";
import { everyPage, type Masterdata, orUndefined } from "./masterdata.js";

export interface TenantMembership {
  tenant: MdTenant;
  role: RoleLevel;
}

export interface ProjectMembership {
  project: MdProject;
  role: RoleLevel;
  inherited: boolean;
}

/** The tenants `subject` is a member of now, by id. */
export async function tenantsOf(md: Masterdata, subject: string): Promise<TenantMembership[]> {
  if (!isMemberId(subject)) return [];
  const tenantMembers = await everyPage(
    (paging) => md.tenantMembers.find({ memberId: subject, paging }),
    (r) => r.tenantMembers,
  );
  const tenants = await Promise.all(tenantMembers.map((m) => orUndefined(md.tenants.get({ id: m.tenantId }))));
  const out: TenantMembership[] = [];
  tenantMembers.forEach((m, i) => {
    const t = tenants[i]?.tenant;
    if (t) out.push({ tenant: t, role: m.role as number as RoleLevel });
  });
  return out.sort((a, b) => (a.tenant.meta?.id ?? "").localeCompare(b.tenant.meta?.id ?? ""));
}

/**
 * The projects `subject` is a member of now: direct memberships and every
 * project of a tenant it is a member of, each with the higher of the two roles.
 */
export async function projectsOf(md: Masterdata, subject: string, tenants?: TenantMembership[]): Promise<ProjectMembership[]> {
  if (!isMemberId(subject)) return [];
  const viaTenants = tenants ?? (await tenantsOf(md, subject));
  const [projectMembers, ...tenantProjects] = await Promise.all([
    everyPage(
      (paging) => md.projectMembers.find({ tenantId: subject, paging }),
      (r) => r.projectMembers,
    ),
    ...viaTenants.map((t) =>
      everyPage(
        (paging) => md.projects.find({ tenantId: t.tenant.meta?.id ?? "", paging }),
        (r) => r.projects,
      ),
    ),
  ]);
  const byId = new Map<string, { project?: MdProject; direct?: RoleLevel; viaTenant?: RoleLevel }>();
  viaTenants.forEach((t, i) => {
    for (const p of tenantProjects[i] ?? []) byId.set(p.meta?.id ?? "", { project: p, viaTenant: t.role });
  });
  const directProjects = await Promise.all(projectMembers.map((m) => (byId.has(m.projectId) ? undefined : orUndefined(md.projects.get({ id: m.projectId })))));
  projectMembers.forEach((m, i) => {
    const entry = byId.get(m.projectId) ?? { project: directProjects[i]?.project };
    entry.direct = m.role as number as RoleLevel;
    byId.set(m.projectId, entry);
  });
  const out: ProjectMembership[] = [];
  for (const e of byId.values()) {
    const eff = effectiveMembership(e.direct, e.viaTenant);
    if (e.project && eff) out.push({ project: e.project, ...eff });
  }
  return out.sort((a, b) => (a.project.meta?.id ?? "").localeCompare(b.project.meta?.id ?? ""));
}

export interface MemberView {
  id: string;
  role: RoleLevel;
  inherited: boolean;
  createdAt: Timestamp | undefined;
}

/** A tenant's members, by id. */
export async function tenantMembers(md: Masterdata, tenantId: string): Promise<MemberView[]> {
  const members = await everyPage(
    (paging) => md.tenantMembers.find({ tenantId, paging }),
    (r) => r.tenantMembers,
  );
  return members.map((m) => ({ id: m.memberId, role: m.role as number as RoleLevel, inherited: false, createdAt: m.meta?.createdTime })).sort((a, b) => a.id.localeCompare(b.id));
}

/** A project's members: direct ones and those of its tenant, each with the higher role. */
export async function projectMembers(md: Masterdata, project: MdProject): Promise<MemberView[]> {
  const [projectMembers, viaTenant] = await Promise.all([
    everyPage(
      (paging) => md.projectMembers.find({ projectId: project.meta?.id ?? "", paging }),
      (r) => r.projectMembers,
    ),
    tenantMembers(md, project.tenantId),
  ]);
  const byId = new Map<string, { direct?: RoleLevel; viaTenant?: RoleLevel; createdAt?: Timestamp }>();
  for (const m of viaTenant) byId.set(m.id, { viaTenant: m.role, createdAt: m.createdAt });
  for (const m of projectMembers) byId.set(m.tenantId, { ...byId.get(m.tenantId), direct: m.role as number as RoleLevel, createdAt: m.meta?.createdTime });
  const out: MemberView[] = [];
  for (const [id, e] of byId) {
    const eff = effectiveMembership(e.direct, e.viaTenant);
    if (eff) out.push({ id, ...eff, createdAt: e.createdAt });
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}
