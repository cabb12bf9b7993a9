import { Code, ConnectError } from "@connectrpc/connect";
import { InvitationTarget, type MembershipRole } from "../../../gen/masterdata/v1/invitation_pb.js";
import type { RoleLevel } from "../../domain/tenancy.js";
import { uuidv7 } from "../../ids.js";
import { type GrantCapKey, pendingGrantCapRepository as pendingCaps } from "../../repositories/pending-grant-cap-repository.js";
import type { TargetKind } from "./invitations.js";
import { everyPage, type TenancyDeps } from "./masterdata.js";

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
  // Also when unchanged: the retry of a demotion whose token cap failed after masterdata committed.
  if (role <= previous) await capMemberGrants(deps, kind, targetId, memberId, role);
  return { role, previous };
}

/**
 * Ends a membership (masterdata refuses the last owner's) and then takes the
 * grant from every token of the member, on every replica, before answering:
 * a removed member is locked out of the tenant or project at once.
 */
export async function removeMember(deps: TenancyDeps, kind: TargetKind, targetId: string, memberId: string): Promise<{ previous: RoleLevel }> {
  const key = { subject: memberId, kind, targetId };
  const previous = await withPendingCap(
    deps,
    key,
    async () => (await deps.md.memberships.remove({ target: targetOf(kind), targetId, memberId })).membership!.role as number as RoleLevel,
    () => 0,
    { retried: true },
  );
  return { previous };
}

/**
 * Runs a membership change that may lower `key`'s grants, then caps the
 * member's tokens at `maxAfter(result)`. A pending-cap row is written before
 * masterdata changes anything and cleared once the tokens are capped: should
 * the cap not happen (metal-api's database away between the two steps), the
 * sweep does it (server/jobs/grant-cap-sweep.ts). An answer after which the
 * change may have happened all the same keeps the row; a refusal drops it.
 * With `retried`, a NotFound while an earlier change of the same membership
 * left its row is taken as that change's retry: the grant is capped to
 * nothing now, and the NotFound answered.
 */
export async function withPendingCap<T>(deps: TenancyDeps, key: GrantCapKey, change: () => Promise<T>, maxAfter: (result: T) => number, options: { retried?: boolean } = {}): Promise<T> {
  const pending = uuidv7();
  await pendingCaps.add(deps.db, pending, key);
  let result: T;
  try {
    result = await change();
  } catch (err) {
    const code = ConnectError.from(err).code;
    if (options.retried && code === Code.NotFound && (await pendingCaps.hasOther(deps.db, key, pending))) {
      // The retry of a removal that ended the membership but not its grants: take them now, then say it is gone.
      await capMemberGrants(deps, key.kind, key.targetId, key.subject, 0);
      await pendingCaps.clear(deps.db, key);
    } else if (!MAY_HAVE_HAPPENED.has(code)) {
      await pendingCaps.delete(deps.db, [pending]);
    }
    throw err;
  }
  await capMemberGrants(deps, key.kind, key.targetId, key.subject, maxAfter(result));
  await pendingCaps.clear(deps.db, key);
  return result;
}

/** Answers after which masterdata may have changed the membership all the same: the pending cap stays for the sweep. */
const MAY_HAVE_HAPPENED = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Canceled, Code.Unknown, Code.Internal]);

/**
 * Takes what a removal left pending (server/jobs/grant-cap-sweep.ts): caps
 * the member's tokens at their current role in masterdata, which is none
 * when the removal happened and the unchanged role when it did not.
 */
export async function capPendingGrant(deps: TenancyDeps, key: GrantCapKey): Promise<void> {
  const current =
    key.kind === "tenant"
      ? (await deps.md.tenantMembers.find({ tenantId: key.targetId, memberId: key.subject })).tenantMembers[0]?.role
      : (await deps.md.projectMembers.find({ projectId: key.targetId, tenantId: key.subject })).projectMembers[0]?.role;
  await capMemberGrants(deps, key.kind, key.targetId, key.subject, current ?? 0);
}

/**
 * A member's role in a tenant or project is now at most `max` (0: gone): every
 * token of the member is capped on it at once, and for a tenant also on the
 * tenant's projects (see capInheritedProjectGrants). Used by the self-service
 * methods and for an operator's raw masterdata.v1 membership changes
 * (server/interceptors/membership-grants.ts).
 */
export async function capMemberGrants(deps: TenancyDeps, kind: TargetKind, targetId: string, memberId: string, max: number): Promise<void> {
  await deps.authority.capSubjectGrant(deps.db, memberId, scopeOf(kind, targetId), max);
  if (kind === "tenant") await capInheritedProjectGrants(deps, targetId, memberId, max);
}

/**
 * A tenant role counts in the tenant's projects, so a token minted from it
 * may name those projects itself (TokenService.Create). When the tenant role
 * is lowered or ends, such grants are capped too: at the new tenant role, or
 * at the member's direct role in the project where that is higher. Called
 * after the tenant grant itself is capped, so no new token can take a
 * project grant from it meanwhile.
 */
async function capInheritedProjectGrants(deps: TenancyDeps, tenantId: string, memberId: string, tenantRole: number): Promise<void> {
  // Every page: a project past the first thousand keeps no grant the tenant role gave.
  const [projects, projectMembers] = await Promise.all([
    everyPage(
      (paging) => deps.md.projects.find({ tenantId, paging }),
      (r) => r.projects,
    ),
    everyPage(
      (paging) => deps.md.projectMembers.find({ tenantId: memberId, paging }),
      (r) => r.projectMembers,
    ),
  ]);
  const direct = new Map(projectMembers.map((m) => [m.projectId, m.role as number]));
  for (const p of projects) {
    const id = p.meta?.id ?? "";
    if (id !== "") await deps.authority.capSubjectGrant(deps.db, memberId, { project: id }, Math.max(tenantRole, direct.get(id) ?? 0));
  }
}

/**
 * What server/interceptors/membership-grants.ts needs for an operator's raw
 * masterdata.v1 membership changes: the membership a delete names by id, and
 * the change run with a pending cap.
 */
export function membershipGrants(deps: TenancyDeps) {
  return {
    async find(kind: "tenant" | "project", id: string): Promise<GrantCapKey | undefined> {
      try {
        if (kind === "tenant") {
          const m = (await deps.md.tenantMembers.get({ id })).tenantMember;
          return m && { subject: m.memberId, kind, targetId: m.tenantId };
        }
        const m = (await deps.md.projectMembers.get({ id })).projectMember;
        return m && { subject: m.tenantId, kind, targetId: m.projectId };
      } catch {
        // Not there, not valid, or masterdata away: the delete itself answers that.
        return undefined;
      }
    },
    guarded: <T>(key: GrantCapKey, change: () => Promise<T>, maxAfter: (result: T) => number) => withPendingCap(deps, key, change, maxAfter),
  };
}
