import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Invitation, InvitationSchema, InvitationTarget, type MembershipRole } from "../../../gen/masterdata/v1/invitation_pb.js";
import type { InvitationRow } from "../db/schema/index.js";

export type TargetKind = "tenant" | "project";

export const targetKindOf = (t: InvitationTarget): TargetKind => (t === InvitationTarget.PROJECT ? "project" : "tenant");
export const toInvitationTarget = (k: TargetKind): InvitationTarget => (k === "project" ? InvitationTarget.PROJECT : InvitationTarget.TENANT);

export function toInvitation(row: InvitationRow): Invitation {
  return create(InvitationSchema, {
    id: row.id,
    target: toInvitationTarget(row.target),
    tenantId: row.tenantId,
    projectId: row.projectId ?? "",
    role: row.role as MembershipRole,
    createdBy: row.createdBy,
    createdTime: timestampFromDate(row.createdAt),
    expiresTime: timestampFromDate(row.expiresAt),
  });
}
