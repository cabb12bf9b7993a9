import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { MembershipRole } from "../../../gen/masterdata/v1/invitation_pb.js";
import type { MembershipService } from "../../../gen/masterdata/v1/membership_pb.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { lastOwnerRefusal, OWNER, type RoleLevel } from "../../domain/tenancy.js";
import { failedPrecondition } from "../../errors.js";
import { targetKindOf, toInvitationTarget } from "../convert/invitation.js";
import { invitationRepository as invitations } from "../repositories/invitation-repository.js";
import { membershipRepository as memberships } from "../repositories/membership-repository.js";
import { projectMemberRepository } from "../repositories/project-member-repository.js";
import { projectRepository } from "../repositories/project-repository.js";
import { tenantMemberRepository } from "../repositories/tenant-member-repository.js";
import { tenantRepository } from "../repositories/tenant-repository.js";
import { validateMembershipChange } from "../validate/invitation.js";

export interface MembershipServiceDeps {
  db: DbHandle;
}

const notMember = (memberId: string, kind: string, id: string) => new ConnectError(`"${memberId}" is not a member of ${kind} "${id}"`, Code.NotFound);

interface Change {
  kind: "tenant" | "project";
  targetId: string;
  memberId: string;
  /** undefined removes the membership. */
  role: RoleLevel | undefined;
}

/**
 * Changes one membership under the target's row lock (FOR UPDATE): every
 * change of the owners of one tenant (or project) waits for the one before,
 * so the owner count it reads stays true until it commits. Two owners leaving
 * at once: the second sees one owner left and is refused.
 */
async function change(db: DbHandle, c: Change): Promise<{ previous: RoleLevel }> {
  return inTransaction(db, async (tx) => {
    if (c.kind === "tenant") {
      await tenantRepository.lock(tx, c.targetId);
      const row = await memberships.tenantMembership(tx, c.targetId, c.memberId);
      if (!row) throw notMember(c.memberId, "tenant", c.targetId);
      const refusal = lastOwnerRefusal(row.role as RoleLevel, c.role, await memberships.tenantOwners(tx, c.targetId), `tenant "${c.targetId}"`);
      if (refusal) throw failedPrecondition(refusal);
      if (c.role === undefined) await tenantMemberRepository.delete(tx, row.id);
      else if (c.role !== row.role) await tenantMemberRepository.update(tx, row.id, row.version, { role: c.role });
      // No longer an owner: the invitations they made (into the tenant and its projects) go with the role.
      if (c.role === undefined || c.role < OWNER) await invitations.deleteCreatedBy(tx, { tenantId: c.targetId }, c.memberId);
      return { previous: row.role as RoleLevel };
    }
    const project = await projectRepository.lock(tx, c.targetId);
    const row = await memberships.projectMembership(tx, c.targetId, c.memberId);
    if (!row) throw notMember(c.memberId, "project", c.targetId);
    // The tenant's owners manage its projects too; the tenant keeps at least one of them by the same rule.
    const owners = (await memberships.projectOwners(tx, c.targetId)) + (await memberships.tenantOwners(tx, project.tenantId));
    const refusal = lastOwnerRefusal(row.role as RoleLevel, c.role, owners, `project "${c.targetId}"`);
    if (refusal) throw failedPrecondition(refusal);
    if (c.role === undefined) await projectMemberRepository.delete(tx, row.id);
    else if (c.role !== row.role) await projectMemberRepository.update(tx, row.id, row.version, { role: c.role });
    // No longer an owner of the project (an owner of its tenant still is one): their invitations into it go.
    if ((c.role === undefined || c.role < OWNER) && (await memberships.tenantMembership(tx, project.tenantId, c.memberId))?.role !== OWNER) {
      await invitations.deleteCreatedBy(tx, { projectId: c.targetId }, c.memberId);
    }
    return { previous: row.role as RoleLevel };
  });
}

/** Role changes and removals that keep every tenant and project with an owner (docs/tenancy.md). */
export function createMembershipService({ db }: MembershipServiceDeps): ServiceImpl<typeof MembershipService> {
  return {
    async setRole(req) {
      validateMembershipChange(req);
      const kind = targetKindOf(req.target);
      const { previous } = await change(db, { kind, targetId: req.targetId, memberId: req.memberId, role: req.role as RoleLevel });
      return {
        membership: { target: toInvitationTarget(kind), targetId: req.targetId, memberId: req.memberId, role: req.role },
        previousRole: previous as number as MembershipRole,
      };
    },

    async remove(req) {
      validateMembershipChange(req);
      const kind = targetKindOf(req.target);
      const { previous } = await change(db, { kind, targetId: req.targetId, memberId: req.memberId, role: undefined });
      return { membership: { target: toInvitationTarget(kind), targetId: req.targetId, memberId: req.memberId, role: previous as number as MembershipRole } };
    },
  };
}
