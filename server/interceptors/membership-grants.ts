import type { Interceptor, UnaryRequest, UnaryResponse } from "@connectrpc/connect";
import { ProjectMemberService } from "../../gen/masterdata/v1/project_member_pb.js";
import { TenantMemberService } from "../../gen/masterdata/v1/tenant_member_pb.js";

/** Whose grant on which tenant or project a membership change concerns. */
export interface MembershipKey {
  subject: string;
  kind: "tenant" | "project";
  targetId: string;
}

export interface MembershipGrantsDeps {
  /** The membership with this id, or undefined when there is none (or it cannot be read now). */
  find(kind: MembershipKey["kind"], id: string): Promise<MembershipKey | undefined>;
  /**
   * Runs the change, then caps the member's tokens at `maxAfter` of its
   * response, with a pending cap kept for the sweep should the cap not
   * happen (usecases/tenancy/members.ts withPendingCap).
   */
  guarded<T>(key: MembershipKey, change: () => Promise<T>, maxAfter: (result: T) => number): Promise<T>;
}

type MemberMessage = {
  id?: string;
  tenantMember?: { tenantId: string; memberId: string; role: number };
  projectMember?: { projectId: string; tenantId: string; role: number };
};

/**
 * The membership a masterdata.v1 delete or update changes: an update names
 * it (masterdata refuses one whose tenant or member differs from the stored
 * one), a delete only by id, so it is looked up first.
 */
async function changedMembership(req: UnaryRequest, deps: MembershipGrantsDeps): Promise<MembershipKey | undefined> {
  const m = req.message as MemberMessage;
  switch (req.method) {
    case TenantMemberService.method.delete:
      return m.id ? deps.find("tenant", m.id) : undefined;
    case ProjectMemberService.method.delete:
      return m.id ? deps.find("project", m.id) : undefined;
    case TenantMemberService.method.update:
      return m.tenantMember && { subject: m.tenantMember.memberId, kind: "tenant", targetId: m.tenantMember.tenantId };
    case ProjectMemberService.method.update:
      return m.projectMember && { subject: m.projectMember.tenantId, kind: "project", targetId: m.projectMember.projectId };
    default:
      return undefined;
  }
}

/** The member's role after the change: none after a delete, the stored one after an update (each response carries it). */
function roleAfter(res: UnaryResponse): number {
  if (res.method === TenantMemberService.method.delete || res.method === ProjectMemberService.method.delete) return 0;
  const m = res.message as MemberMessage;
  return m.tenantMember?.role ?? m.projectMember?.role ?? 0;
}

/**
 * An operator's masterdata.v1 membership delete or update (through metal-api,
 * in-process or forwarded to masterdata-api) caps the member's tokens at once,
 * as the self-service MemberRemove, MemberUpdate and Leave do (a tenant's cap
 * also takes the grants on its projects; a token left with nothing is
 * revoked), and like them keeps a pending cap for the sweep while it runs: a
 * cap that fails after masterdata committed is not lost. A higher role
 * changes no token: it shows in the next one. Calls made to masterdata-api
 * directly cannot do this (it has no write access to the tokens):
 * docs/masterdata-api.md.
 */
export function createMembershipGrantsInterceptor(deps: MembershipGrantsDeps): Interceptor {
  return (next) => async (req) => {
    if (req.stream) return next(req);
    const key = await changedMembership(req, deps);
    // Nothing to find: masterdata answers the call as it would (not found, invalid).
    if (!key) return next(req);
    return deps.guarded(key, () => next(req) as Promise<UnaryResponse>, roleAfter);
  };
}
