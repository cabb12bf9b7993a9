import type { Duration } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Invitation, InvitationTarget, type MembershipRole } from "../../../gen/masterdata/v1/invitation_pb.js";
import { noteCreated } from "../../db/transaction-hook.js";
import { isMemberId, type RoleLevel } from "../../domain/tenancy.js";
import { failedPrecondition } from "../../errors.js";
import { everyPage, type Masterdata, orUndefined } from "./masterdata.js";

export type TargetKind = "tenant" | "project";

const targetOf = (kind: TargetKind) => (kind === "tenant" ? InvitationTarget.TENANT : InvitationTarget.PROJECT);

/** The same answer whatever is wrong with a secret: unknown, used, withdrawn, expired or of the other kind. */
const unknownSecret = () => new ConnectError("invitation not found (unknown, used, withdrawn or expired)", Code.NotFound);

/** The display name of an invitation's target ("" when it went meanwhile). */
export async function targetName(md: Masterdata, kind: TargetKind, id: string): Promise<string> {
  if (kind === "tenant") return (await orUndefined(md.tenants.get({ id })))?.tenant?.name ?? "";
  return (await orUndefined(md.projects.get({ id })))?.project?.name ?? "";
}

/** A new invitation into the tenant or project, made by `createdBy`; its secret is returned only here. */
export async function invite(md: Masterdata, kind: TargetKind, targetId: string, role: RoleLevel, createdBy: string, expiresIn: Duration | undefined) {
  const { invitation, secret } = await md.invitations.create({ target: targetOf(kind), targetId, role: role as number as MembershipRole, createdBy, expiresIn });
  noteCreated(invitation!.id);
  return { invitation: invitation!, secret, name: await targetName(md, kind, targetId) };
}

/** The invitation behind a secret, if it is one of this kind. */
export async function inviteGet(md: Masterdata, kind: TargetKind, secret: string): Promise<{ invitation: Invitation; name: string }> {
  const { invitation } = await md.invitations.get({ secret });
  if (!invitation || invitation.target !== targetOf(kind)) throw unknownSecret();
  return { invitation, name: await targetName(md, kind, kind === "tenant" ? invitation.tenantId : invitation.projectId) };
}

/**
 * Makes `subject` a member with the invitation's role and uses it up. The
 * subject must be a user (a tenant of masterdata). The new role shows in
 * tokens issued afterwards (sign in again or have a new token made).
 */
export async function inviteAccept(md: Masterdata, kind: TargetKind, secret: string, subject: string): Promise<{ invitation: Invitation; name: string }> {
  if (!isMemberId(subject)) throw failedPrecondition(`the token's subject "${subject.slice(0, 64)}" is not a user and cannot become a member`);
  const { invitation } = await md.invitations.accept({ secret, memberId: subject, target: targetOf(kind) });
  return { invitation: invitation!, name: await targetName(md, kind, kind === "tenant" ? invitation!.tenantId : invitation!.projectId) };
}

/** The pending invitations of a tenant or project, oldest first. */
export async function invitesList(md: Masterdata, kind: TargetKind, targetId: string) {
  const [invitations, name] = await Promise.all([
    everyPage(
      (paging) => md.invitations.find({ target: targetOf(kind), targetId, paging }),
      (r) => r.invitations,
    ),
    targetName(md, kind, targetId),
  ]);
  return { invitations, name };
}

/** Withdraws an invitation of this tenant or project; NotFound for any other. */
export async function inviteDelete(md: Masterdata, kind: TargetKind, targetId: string, id: string) {
  const [{ invitation }, name] = await Promise.all([md.invitations.delete({ id, target: targetOf(kind), targetId }), targetName(md, kind, targetId)]);
  return { invitation: invitation!, name };
}
