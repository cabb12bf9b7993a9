import { create } from "@bufbuild/protobuf";
import { type TenantMember, TenantMemberSchema } from "../../../gen/masterdata/v1/tenant_member_pb.js";
import type { NewTenantMemberRow, TenantMemberRow } from "../db/schema/index.js";
import { metaColumnsFrom, newId, toMeta } from "./meta.js";

const TENANT_MEMBER_KIND = "TenantMember";

export function toTenantMember(row: TenantMemberRow): TenantMember {
  return create(TenantMemberSchema, { meta: toMeta(TENANT_MEMBER_KIND, row), tenantId: row.tenantId, memberId: row.memberId, role: row.role });
}

/** The columns an update replaces; the two sides are not among them. */
export function tenantMemberPatchFrom(m: TenantMember): Omit<NewTenantMemberRow, "id" | "tenantId" | "memberId"> {
  return { ...metaColumnsFrom(m.meta), role: m.role };
}

export function tenantMemberRowFromCreate(m: TenantMember): NewTenantMemberRow {
  return { id: newId(m.meta), ...tenantMemberPatchFrom(m), tenantId: m.tenantId, memberId: m.memberId };
}
