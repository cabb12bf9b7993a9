import { Code, ConnectError } from "@connectrpc/connect";
import type { Project as MdProject } from "../../../gen/masterdata/v1/project_pb.js";
import type { Quotas } from "../../../gen/metal/api/v1/tenant_pb.js";
import { limitsFromQuotas, limitsOf, toMasterdataQuotaSet } from "../../convert/tenancy.js";
import { noteCreated } from "../../db/transaction-hook.js";
import type { Roles } from "../../domain/roles.js";
import { mayChangeProjectQuotas, projectQuotasWithinTenant, type QuotaLimits } from "../../domain/tenancy.js";
import { failedPrecondition, permissionDenied } from "../../errors.js";
import type { Masterdata } from "./masterdata.js";
import { type MemberView, projectMembers } from "./memberships.js";
import { retryUnversioned } from "./tenants.js";

/** The quotas a project of this tenant gets, or FailedPrecondition listing each limit above the tenant's. */
function withinTenant(tenantId: string, tenantQuotas: QuotaLimits, requested: QuotaLimits): QuotaLimits {
  const { quotas, problems } = projectQuotasWithinTenant(tenantQuotas, requested);
  if (problems.length > 0) throw failedPrecondition(`the project's quotas must stay within tenant "${tenantId}"'s: ${problems.join("; ")}`);
  return quotas;
}

export interface ProjectCreation {
  tenantId: string;
  /** Empty: masterdata makes a UUID. */
  id: string;
  name: string;
  description: string;
  /** Unset: the tenant's default quotas. */
  quotas: Quotas | undefined;
}

/** A new project of the tenant, its quotas within the tenant's (masterdata enforces the tenant's project count). */
export async function createProject(md: Masterdata, c: ProjectCreation): Promise<MdProject> {
  const { tenant } = await md.tenants.get({ id: c.tenantId });
  const requested = c.quotas ? limitsFromQuotas(c.quotas) : limitsOf(tenant!.defaultQuotas);
  const quotas = withinTenant(c.tenantId, limitsOf(tenant!.quotas), requested);
  const { project } = await md.projects.create({
    project: { meta: c.id ? { id: c.id } : undefined, name: c.name, description: c.description, tenantId: c.tenantId, quotas: toMasterdataQuotaSet(quotas) },
  });
  noteCreated(project!.meta?.id ?? "");
  return project!;
}

/** A project and its members (direct and through its tenant). */
export async function getProject(md: Masterdata, projectId: string): Promise<{ project: MdProject; members: MemberView[] }> {
  const { project } = await md.projects.get({ id: projectId });
  return { project: project!, members: await projectMembers(md, project!) };
}

export interface ProjectChange {
  projectId: string;
  version: bigint;
  name?: string;
  description?: string;
  quotas?: Quotas;
}

/** Changes name and description; quotas only for an owner of the project's tenant, within the tenant's. */
export async function updateProject(md: Masterdata, caller: Roles, c: ProjectChange): Promise<MdProject> {
  return retryUnversioned(c.version, () => updateOnce(md, caller, c));
}

async function updateOnce(md: Masterdata, caller: Roles, c: ProjectChange): Promise<MdProject> {
  const { project: current } = await md.projects.get({ id: c.projectId });
  const p = current!;
  const version = p.meta!.version;
  if (c.version !== 0n && c.version !== version) {
    throw new ConnectError(`project "${c.projectId}" is at version ${version}, the update was for version ${c.version}; read it again`, Code.Aborted);
  }
  let quotas = p.quotas;
  if (c.quotas) {
    if (!mayChangeProjectQuotas(caller, p.tenantId)) throw permissionDenied(`permission denied: a project's quotas are changed by an owner of its tenant "${p.tenantId}"`);
    const { tenant } = await md.tenants.get({ id: p.tenantId });
    quotas = toMasterdataQuotaSet(withinTenant(p.tenantId, limitsOf(tenant!.quotas), limitsFromQuotas(c.quotas)));
  }
  const { project } = await md.projects.update({ project: { ...p, name: c.name ?? p.name, description: c.description ?? p.description, quotas } });
  return project!;
}

/** Deletes a project nothing uses any more; masterdata then takes every token's grant on it. */
export async function deleteProject(md: Masterdata, projectId: string): Promise<MdProject> {
  const { project } = await md.projects.delete({ id: projectId });
  return project!;
}
