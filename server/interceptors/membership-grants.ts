import type { Interceptor, UnaryResponse } from "@connectrpc/connect";
import { ProjectMemberService } from "../../gen/masterdata/v1/project_member_pb.js";
import { TenantMemberService } from "../../gen/masterdata/v1/tenant_member_pb.js";
import type { TokenAuthority } from "../auth/token-authority.js";
import type { DbHandle } from "../db/handle.js";

type Lowered = { subject: string; scope: { tenant: string } | { project: string }; max: number };

/**
 * What a successful masterdata.v1 membership change means for the tokens of
 * the member: removed, nothing; changed, at most the new role. Both
 * responses carry the membership (a delete returns the deleted one).
 */
function loweredBy(method: unknown, message: unknown): Lowered | undefined {
  const m = message as { tenantMember?: { tenantId: string; memberId: string; role: number }; projectMember?: { projectId: string; tenantId: string; role: number } };
  if (method === TenantMemberService.method.delete && m.tenantMember) return { subject: m.tenantMember.memberId, scope: { tenant: m.tenantMember.tenantId }, max: 0 };
  if (method === TenantMemberService.method.update && m.tenantMember) return { subject: m.tenantMember.memberId, scope: { tenant: m.tenantMember.tenantId }, max: m.tenantMember.role };
  if (method === ProjectMemberService.method.delete && m.projectMember) return { subject: m.projectMember.tenantId, scope: { project: m.projectMember.projectId }, max: 0 };
  if (method === ProjectMemberService.method.update && m.projectMember) return { subject: m.projectMember.tenantId, scope: { project: m.projectMember.projectId }, max: m.projectMember.role };
  return undefined;
}

/**
 * An operator's masterdata.v1 membership delete or update (through metal-api,
 * in-process or forwarded to masterdata-api) caps the member's tokens at once,
 * as the self-service MemberRemove, MemberUpdate and Leave do
 * (TokenAuthority.capSubjectGrant: a lower role, or the grant gone; a token left
 * with nothing is revoked). A higher role changes no token: it shows in the
 * next one. Calls made to masterdata-api directly cannot do this (it has no
 * write access to the tokens): docs/masterdata-api.md.
 */
export function createMembershipGrantsInterceptor(deps: { db: DbHandle; authority: Pick<TokenAuthority, "capSubjectGrant"> }): Interceptor {
  return (next) => async (req) => {
    const res = await next(req);
    if (res.stream) return res;
    const lowered = loweredBy(req.method, (res as UnaryResponse).message);
    if (lowered) await deps.authority.capSubjectGrant(deps.db, lowered.subject, lowered.scope, lowered.max);
    return res;
  };
}
