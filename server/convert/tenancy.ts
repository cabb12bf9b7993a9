import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampNow } from "@bufbuild/protobuf/wkt";
import { type QuotaSet, QuotaSetSchema } from "../../gen/masterdata/v1/common_pb.js";
import type { Invitation } from "../../gen/masterdata/v1/invitation_pb.js";
import type { Project as MdProject } from "../../gen/masterdata/v1/project_pb.js";
import type { Tenant as MdTenant } from "../../gen/masterdata/v1/tenant_pb.js";
import { MetaSchema, type ProjectRole, type TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import { type Project, type ProjectInvite, ProjectInviteSchema, type ProjectMember, ProjectMemberSchema, ProjectSchema } from "../../gen/metal/api/v1/project_pb.js";
import { type Quotas, QuotasSchema, type Tenant, type TenantInvite, TenantInviteSchema, type TenantMember, TenantMemberSchema, TenantSchema } from "../../gen/metal/api/v1/tenant_pb.js";
import type { QuotaLimits } from "../domain/tenancy.js";

const KEYS = ["machine", "ip", "network", "project"] as const;

/** masterdata's QuotaSet as plain limits (a missing key is unlimited). */
export function limitsOf(q: QuotaSet | undefined): QuotaLimits {
  const out: QuotaLimits = {};
  for (const k of KEYS) {
    const max = q?.[k]?.max;
    if (max !== undefined) out[k] = max;
  }
  return out;
}

/** The API's Quotas as plain limits. */
export function limitsFromQuotas(q: Quotas | undefined): QuotaLimits {
  const out: QuotaLimits = {};
  for (const k of KEYS) if (q?.[k] !== undefined) out[k] = q[k];
  return out;
}

export function toMasterdataQuotaSet(l: QuotaLimits): QuotaSet {
  return create(QuotaSetSchema, Object.fromEntries(KEYS.map((k) => [k, l[k] === undefined ? {} : { max: l[k] }])));
}

export function toQuotas(l: QuotaLimits, keys: readonly (typeof KEYS)[number][] = KEYS): Quotas {
  return create(QuotasSchema, Object.fromEntries(keys.filter((k) => l[k] !== undefined).map((k) => [k, l[k]])));
}

const metaOf = (m: { createdTime?: Timestamp; updatedTime?: Timestamp; version: bigint } | undefined) => create(MetaSchema, { createdAt: m?.createdTime, updatedAt: m?.updatedTime, version: m?.version ?? 0n });

export function toApiTenant(t: MdTenant): Tenant {
  return create(TenantSchema, { id: t.meta?.id ?? "", name: t.name, description: t.description, quotas: toQuotas(limitsOf(t.quotas)), meta: metaOf(t.meta) });
}

export function toApiProject(p: MdProject): Project {
  return create(ProjectSchema, {
    id: p.meta?.id ?? "",
    tenant: p.tenantId,
    name: p.name,
    description: p.description,
    quotas: toQuotas(limitsOf(p.quotas), ["machine", "ip", "network"]),
    meta: metaOf(p.meta),
  });
}

export const toTenantMember = (id: string, role: number, createdAt: Timestamp | undefined): TenantMember => create(TenantMemberSchema, { id, role: role as TenantRole, createdAt: createdAt ?? timestampNow() });

export const toProjectMember = (id: string, role: number, inherited: boolean, createdAt: Timestamp | undefined): ProjectMember =>
  create(ProjectMemberSchema, { id, role: role as ProjectRole, inherited, createdAt: createdAt ?? timestampNow() });

export function toTenantInvite(i: Invitation, tenantName: string): TenantInvite {
  return create(TenantInviteSchema, {
    id: i.id,
    tenant: i.tenantId,
    tenantName,
    role: i.role as number as TenantRole,
    createdBy: i.createdBy,
    createdAt: i.createdTime,
    expiresAt: i.expiresTime,
  });
}

export function toProjectInvite(i: Invitation, projectName: string): ProjectInvite {
  return create(ProjectInviteSchema, {
    id: i.id,
    project: i.projectId,
    projectName,
    tenant: i.tenantId,
    role: i.role as number as ProjectRole,
    createdBy: i.createdBy,
    createdAt: i.createdTime,
    expiresAt: i.expiresTime,
  });
}
