import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Meta, QuotaSet } from "../../../gen/masterdata/v1/common_pb.js";
import { MetaSchema, QuotaSetSchema } from "../../../gen/masterdata/v1/common_pb.js";
import { ProjectMemberSchema, type ProjectMember } from "../../../gen/masterdata/v1/project_member_pb.js";
import { ProjectSchema, type Project } from "../../../gen/masterdata/v1/project_pb.js";
import { TenantMemberSchema, type TenantMember } from "../../../gen/masterdata/v1/tenant_member_pb.js";
import { TenantSchema, type Tenant } from "../../../gen/masterdata/v1/tenant_pb.js";
import type { ProjectMemberRow, ProjectRow, StoredQuotas, TenantMemberRow, TenantRow } from "../db/schema/index.js";

const API_VERSION = "v1";

interface MetaRow {
  id: string;
  annotations: Record<string, string>;
  labels: string[];
  createdAt: Date;
  updatedAt: Date;
  version: number;
}

function toMeta(kind: string, row: MetaRow): Meta {
  return create(MetaSchema, {
    id: row.id,
    kind,
    apiversion: API_VERSION,
    version: BigInt(row.version),
    createdTime: timestampFromDate(row.createdAt),
    updatedTime: timestampFromDate(row.updatedAt),
    annotations: row.annotations,
    labels: row.labels,
  });
}

export function toQuotaSet(q: StoredQuotas): QuotaSet {
  const quota = (max: number | undefined) => (max === undefined ? {} : { max });
  return create(QuotaSetSchema, { machine: quota(q.machine), ip: quota(q.ip), network: quota(q.network), project: quota(q.project) });
}

export function fromQuotaSet(q: QuotaSet | undefined): StoredQuotas {
  const out: StoredQuotas = {};
  if (q?.machine?.max !== undefined) out.machine = q.machine.max;
  if (q?.ip?.max !== undefined) out.ip = q.ip.max;
  if (q?.network?.max !== undefined) out.network = q.network.max;
  if (q?.project?.max !== undefined) out.project = q.project.max;
  return out;
}

/** Meta fields a client may set: the rest is the server's. */
export function metaFields(meta: Meta | undefined): { annotations: Record<string, string>; labels: string[] } {
  return { annotations: { ...(meta?.annotations ?? {}) }, labels: [...(meta?.labels ?? [])] };
}

export const toTenant = (r: TenantRow): Tenant =>
  create(TenantSchema, {
    meta: toMeta("Tenant", r),
    name: r.name,
    description: r.description,
    defaultQuotas: toQuotaSet(r.defaultQuotas),
    quotas: toQuotaSet(r.quotas),
  });

export const toProject = (r: ProjectRow): Project =>
  create(ProjectSchema, { meta: toMeta("Project", r), name: r.name, description: r.description, tenantId: r.tenantId, quotas: toQuotaSet(r.quotas) });

export const toTenantMember = (r: TenantMemberRow): TenantMember =>
  create(TenantMemberSchema, { meta: toMeta("TenantMember", r), tenantId: r.tenantId, memberId: r.memberId, role: r.role });

export const toProjectMember = (r: ProjectMemberRow): ProjectMember =>
  create(ProjectMemberSchema, { meta: toMeta("ProjectMember", r), projectId: r.projectId, tenantId: r.tenantId, role: r.role });
