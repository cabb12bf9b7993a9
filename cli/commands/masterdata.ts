import { fromJson, type JsonObject, toJson } from "@bufbuild/protobuf";
import { type Command, Flags } from "@oclif/core";
import type { QuotaSet } from "../../gen/masterdata/v1/common_pb.js";
import * as project from "../../gen/masterdata/v1/project_pb.js";
import * as tenant from "../../gen/masterdata/v1/tenant_pb.js";
import { allPages } from "../base.js";
import { type Column, labelsOf, UsageError } from "../output.js";
import { resourceCommands } from "../resource.js";
import { memberProject, memberProjectCreate, memberProjects, memberTenant, memberTenants, selfServiceFallback, TENANCY_COMMANDS } from "./tenancy.js";

const lenient = { ignoreUnknownFields: true };
const quotas = (q: QuotaSet | undefined) =>
  (["machine", "ip", "network", "project"] as const)
    .filter((k) => q?.[k]?.max !== undefined)
    .map((k) => `${k}=${q![k]!.max}`)
    .join(",");
const metaId = (d: JsonObject) => ((d.meta as JsonObject | undefined)?.id as string | undefined) ?? (typeof d.id === "string" ? d.id : undefined);

/** Masterdata updates replace the whole entity: the current one with the document laid over it, at the version to check. */
function merged(current: JsonObject, doc: JsonObject, version: string): JsonObject {
  const meta = { ...(current.meta as JsonObject), ...((doc.meta as JsonObject | undefined) ?? {}), version };
  return { ...current, ...doc, meta };
}

const quotaFlags = {
  "machine-quota": Flags.integer({ description: "at most this many machines" }),
  "ip-quota": Flags.integer({ description: "at most this many IPs" }),
  "network-quota": Flags.integer({ description: "at most this many networks" }),
};
const quotaDoc = (f: Record<string, unknown>) => {
  const q: JsonObject = {};
  for (const k of ["machine", "ip", "network", "project"]) if (f[`${k}-quota`] !== undefined) q[k] = { max: f[`${k}-quota`] as number };
  return Object.keys(q).length > 0 ? q : undefined;
};

const tenantColumns: Column<tenant.Tenant>[] = [
  { header: "ID", value: (t) => t.meta?.id ?? "" },
  { header: "Name", value: (t) => t.name },
  { header: "Description", value: (t) => t.description },
  { header: "Quotas", value: (t) => quotas(t.quotas) },
  { header: "Default Quotas", value: (t) => quotas(t.defaultQuotas), wide: true },
  { header: "Labels", value: (t) => (t.meta?.labels ?? []).join(","), wide: true },
  { header: "Annotations", value: (t) => labelsOf(t.meta?.annotations), wide: true },
];

const tenants = resourceCommands({
  kind: "tenant",
  topic: "tenant",
  topicAliases: ["tenants"],
  schema: tenant.TenantSchema,
  columns: tenantColumns,
  docId: metaId,
  idOf: (t) => t.meta?.id ?? "",
  get: (c, id) =>
    selfServiceFallback(
      async () => (await c.client(tenant.TenantService).get({ id })).tenant!,
      () => memberTenant(c, id),
    ),
  listFlags: { name: Flags.string({ description: "only with this name" }), id: Flags.string() },
  list: (c, f) =>
    selfServiceFallback(
      () =>
        allPages(async (paging) => {
          const r = await c.client(tenant.TenantService).find({ paging, name: f.name as string | undefined, id: f.id as string | undefined });
          return { items: r.tenants, next: r.nextPageToken };
        }),
      () => memberTenants(c),
    ),
  createFlags: { id: Flags.string(), name: Flags.string(), description: Flags.string(), ...quotaFlags, "project-quota": Flags.integer({ description: "at most this many projects" }) },
  createDoc: (f) => {
    if (!f.id) throw new UsageError("--id (or -f) is required");
    return JSON.parse(JSON.stringify({ meta: { id: f.id }, name: f.name ?? f.id, description: f.description, quotas: quotaDoc(f) }));
  },
  create: async (c, doc) => (await c.client(tenant.TenantService).create({ tenant: fromJson(tenant.TenantSchema, doc, lenient) })).tenant!,
  update: async (c, doc, cur, version) =>
    (await c.client(tenant.TenantService).update({ tenant: fromJson(tenant.TenantSchema, merged(toJson(tenant.TenantSchema, cur) as JsonObject, doc, version), lenient) })).tenant!,
  delete: async (c, id) => (await c.client(tenant.TenantService).delete({ id })).tenant!,
});

const projectColumns: Column<project.Project>[] = [
  { header: "ID", value: (p) => p.meta?.id ?? "" },
  { header: "Tenant", value: (p) => p.tenantId },
  { header: "Name", value: (p) => p.name },
  { header: "Description", value: (p) => p.description },
  { header: "Quotas", value: (p) => quotas(p.quotas) },
  { header: "Labels", value: (p) => (p.meta?.labels ?? []).join(","), wide: true },
  { header: "Annotations", value: (p) => labelsOf(p.meta?.annotations), wide: true },
];

const projects = resourceCommands({
  kind: "project",
  topic: "project",
  topicAliases: ["projects"],
  schema: project.ProjectSchema,
  columns: projectColumns,
  docId: metaId,
  idOf: (p) => p.meta?.id ?? "",
  get: (c, id) =>
    selfServiceFallback(
      async () => (await c.client(project.ProjectService).get({ id })).project!,
      () => memberProject(c, id),
    ),
  listFlags: { name: Flags.string(), tenant: Flags.string({ description: "only of this tenant" }), id: Flags.string() },
  list: (c, f) =>
    selfServiceFallback(
      () =>
        allPages(async (paging) => {
          const r = await c.client(project.ProjectService).find({ paging, name: f.name as string | undefined, tenantId: f.tenant as string | undefined, id: f.id as string | undefined });
          return { items: r.projects, next: r.nextPageToken };
        }),
      () => memberProjects(c, f.tenant as string | undefined),
    ),
  createFlags: { id: Flags.string(), name: Flags.string(), description: Flags.string(), tenant: Flags.string(), ...quotaFlags },
  createDoc: (f) => {
    if (!f.tenant) throw new UsageError("--tenant (or -f) is required");
    return JSON.parse(JSON.stringify({ meta: f.id ? { id: f.id } : undefined, name: f.name ?? f.id, description: f.description, tenantId: f.tenant, quotas: quotaDoc(f) }));
  },
  create: (c, doc) =>
    selfServiceFallback(
      async () => (await c.client(project.ProjectService).create({ project: fromJson(project.ProjectSchema, doc, lenient) })).project!,
      () => memberProjectCreate(c, doc),
    ),
  update: async (c, doc, cur, version) =>
    (await c.client(project.ProjectService).update({ project: fromJson(project.ProjectSchema, merged(toJson(project.ProjectSchema, cur) as JsonObject, doc, version), lenient) })).project!,
  delete: async (c, id) => (await c.client(project.ProjectService).delete({ id })).project!,
});

export const MASTERDATA_COMMANDS: Record<string, typeof Command> = { ...tenants, ...projects, ...TENANCY_COMMANDS };
