import type { Interceptor, UnaryResponse } from "@connectrpc/connect";
import { ProjectMemberService } from "../../gen/masterdata/v1/project_member_pb.js";
import { TenantMemberService } from "../../gen/masterdata/v1/tenant_member_pb.js";

/** Whose grant on which tenant or project is now at most `max` (0: gone). */
export interface LoweredGrant {
  kind: "tenant" | "project";
  targetId: string;
  memberId: string;
  max: number;
}

/**
 * What a successful masterdata.v1 membership change means for the tokens of
 * the member: removed, nothing; changed, at most the new role. Both
 * responses carry the membership (a delete returns the deleted one).
 */
function loweredBy(method: unknown, message: unknown): LoweredGrant | undefined {
  const m = message as { tenantMember?: { tenantId: string; memberId: string; role: number }; projectMember?: { projectId: string; tenantId: string; role: number } };
  const tenant = m.tenantMember;
  const project = m.projectMember;
  if (method === TenantMemberService.method.delete && tenant) return { kind: "tenant", targetId: tenant.tenantId, memberId: tenant.memberId, max: 0 };
  if (method === TenantMemberService.method.update && tenant) return { kind: "tenant", targetId: tenant.tenantId, memberId: tenant.memberId, max: tenant.role };
  if (method === ProjectMemberService.method.delete && project) return { kind: "project", targetId: project.projectId, memberId: project.tenantId, max: 0 };
  if (method === ProjectMemberService.method.update && project) return { kind: "project", targetId: project.projectId, memberId: project.tenantId, max: project.role };
  return undefined;
}

/**
 * An operator's masterdata.v1 membership delete or update (through metal-api,
 * in-process or forwarded to masterdata-api) caps the member's tokens at once,
 * as the self-service MemberRemove, MemberUpdate and Leave do
 * (`cap`: usecases/tenancy/members.ts capMemberGrants, which for a tenant also
 * caps the grants on its projects; a token left with nothing is revoked). A
 * higher role changes no token: it shows in the next one. Calls made to masterdata-api directly cannot do this (it has no
 * write access to the tokens): docs/masterdata-api.md.
 */
export function createMembershipGrantsInterceptor(cap: (lowered: LoweredGrant) => Promise<void>): Interceptor {
  return (next) => async (req) => {
    const res = await next(req);
    if (res.stream) return res;
    const lowered = loweredBy(req.method, (res as UnaryResponse).message);
    if (lowered) await cap(lowered);
    return res;
  };
}
