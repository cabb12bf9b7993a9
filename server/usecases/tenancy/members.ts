import { InvitationTarget, type MembershipRole } from "../../../gen/masterdata/v1/invitation_pb.js";
import type { RoleLevel } from "../../domain/tenancy.js";
import type { TargetKind } from "./invitations.js";
import type { TenancyDeps } from "./masterdata.js";

const targetOf = (kind: TargetKind) => (kind === "tenant" ? InvitationTarget.TENANT : InvitationTarget.PROJECT);
const scopeOf = (kind: TargetKind, id: string) => (kind === "tenant" ? { tenant: id } : { project: id });

/**
 * Changes a member's role (masterdata refuses to demote the last owner). A
 * demotion takes effect on the member's tokens at once; a promotion shows in
 * tokens issued afterwards.
 */
export async function updateMember(deps: TenancyDeps, kind: TargetKind, targetId: string, memberId: string, role: RoleLevel): Promise<{ role: RoleLevel; previous: RoleLevel }> {
  const r = await deps.md.memberships.setRole({ target: targetOf(kind), targetId, memberId, role: role as number as MembershipRole });
  const previous = r.previousRole as number as RoleLevel;
  if (role < previous) await deps.authority.capSubjectGrant(deps.db, memberId, scopeOf(kind, targetId), role);
  return { role, previous };
}

/**
 * Ends a membership (masterdata refuses the last owner's) and then takes the
 * grant from every token of the member, on every replica, before answering:
 * a removed member is locked out of the tenant or project at once.
 */
export async function removeMember(deps: TenancyDeps, kind: TargetKind, targetId: string, memberId: string): Promise<{ previous: RoleLevel }> {
  const r = await deps.md.memberships.remove({ target: targetOf(kind), targetId, memberId });
  await deps.authority.capSubjectGrant(deps.db, memberId, scopeOf(kind, targetId), 0);
  return { previous: r.membership!.role as number as RoleLevel };
}
