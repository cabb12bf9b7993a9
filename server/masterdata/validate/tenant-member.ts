import { type TenantMember, TenantMemberRole } from "../../../gen/masterdata/v1/tenant_member_pb.js";
import { validator } from "../../validate/validator.js";
import { checkId, checkMeta } from "./common.js";

/** Create and Update carry a whole membership; update also its id and the version read. */
export function validateTenantMember(m: TenantMember | undefined, opts: { create: boolean }): asserts m is TenantMember {
  const v = validator();
  if (!m) return v.add("tenant_member", "is required").check();
  checkMeta(v, "tenant_member.meta", m.meta, { ...opts, kind: "TenantMember" });
  checkId(v, "tenant_member.tenant_id", m.tenantId);
  checkId(v, "tenant_member.member_id", m.memberId);
  v.enumValue("tenant_member.role", m.role, TenantMemberRole);
  v.check();
}
