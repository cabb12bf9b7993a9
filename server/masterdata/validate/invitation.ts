import type { Duration } from "@bufbuild/protobuf/wkt";
import { InvitationTarget, MembershipRole } from "../../../gen/masterdata/v1/invitation_pb.js";
import { INVITATION_TTL, invitationTtlProblem } from "../../domain/tenancy.js";
import { clip, type Validator, validator } from "../../validate/validator.js";
import { checkId } from "./common.js";

/** Secrets are made by this server (about 47 characters); anything far longer is garbage. */
export const MAX_SECRET_LENGTH = 128;

function checkTarget(v: Validator, path: string, target: InvitationTarget): void {
  if (target !== InvitationTarget.TENANT && target !== InvitationTarget.PROJECT) v.add(path, "must be INVITATION_TARGET_TENANT or INVITATION_TARGET_PROJECT");
}

function checkRole(v: Validator, path: string, role: MembershipRole): void {
  if (role !== MembershipRole.VIEWER && role !== MembershipRole.EDITOR && role !== MembershipRole.OWNER) v.add(path, "must be viewer, editor or owner");
}

export function checkSecret(v: Validator, path: string, secret: string): void {
  if (secret === "") v.add(path, "is required");
  else if (secret.length > MAX_SECRET_LENGTH) v.add(path, `must be at most ${MAX_SECRET_LENGTH} characters`);
}

/** The lifetime in milliseconds: the default when unset, else within the bounds. */
function ttlOf(v: Validator, d: Duration | undefined): number {
  if (!d) return INVITATION_TTL.defaultMs;
  const ms = Number(d.seconds) * 1000 + Math.floor(d.nanos / 1_000_000);
  const problem = invitationTtlProblem(ms);
  if (problem) v.add("expires_in", problem);
  return ms;
}

export function validateInvitationCreate(req: { target: InvitationTarget; targetId: string; role: MembershipRole; createdBy: string; expiresIn?: Duration }): number {
  const v = validator();
  checkTarget(v, "target", req.target);
  checkId(v, "target_id", req.targetId);
  checkRole(v, "role", req.role);
  v.requiredText("created_by", req.createdBy, 256);
  const ms = ttlOf(v, req.expiresIn);
  v.check();
  return ms;
}

export function validateInvitationGet(req: { secret: string }): void {
  const v = validator();
  checkSecret(v, "secret", req.secret);
  v.check();
}

export function validateInvitationAccept(req: { secret: string; memberId: string; target: InvitationTarget }): void {
  const v = validator();
  checkSecret(v, "secret", req.secret);
  checkId(v, "member_id", req.memberId);
  if (req.target !== InvitationTarget.UNSPECIFIED) checkTarget(v, "target", req.target);
  v.check();
}

export function validateInvitationFind(req: { target: InvitationTarget; targetId: string }): void {
  const v = validator();
  checkTarget(v, "target", req.target);
  checkId(v, "target_id", req.targetId);
  v.check();
}

export function validateInvitationDelete(req: { id: string; target: InvitationTarget; targetId: string }): void {
  const v = validator();
  if (req.id === "") v.add("id", "is required");
  else if (!/^[0-9a-f-]{36}$/.test(req.id)) v.add("id", `"${clip(req.id)}" is not an invitation id`);
  checkTarget(v, "target", req.target);
  checkId(v, "target_id", req.targetId);
  v.check();
}

export function validateMembershipChange(req: { target: InvitationTarget; targetId: string; memberId: string; role?: MembershipRole }): void {
  const v = validator();
  checkTarget(v, "target", req.target);
  checkId(v, "target_id", req.targetId);
  checkId(v, "member_id", req.memberId);
  if (req.role !== undefined) checkRole(v, "role", req.role);
  v.check();
}
