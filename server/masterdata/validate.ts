import type { Meta, QuotaSet } from "../../gen/masterdata/v1/common_pb.js";
import { MemberRole } from "../../gen/masterdata/v1/common_pb.js";
import { validator, type Validator } from "../validate/validator.js";

/** Masterdata ids: server-made UUIDs or client-chosen names (user logins, project slugs). */
export function checkId(v: Validator, path: string, id: string): void {
  if (id === "") v.add(path, "is required");
  else if (id.length > 128) v.add(path, "must be at most 128 characters");
  else if (!/^[A-Za-z0-9][A-Za-z0-9@._-]*$/.test(id)) v.add(path, `"${id.slice(0, 64)}" must be letters, digits, '@', '.', '_' or '-', starting with a letter or digit`);
}

function checkMeta(v: Validator, meta: Meta | undefined, opts: { create: boolean }): void {
  if (!meta) {
    if (!opts.create) v.add("meta", "is required");
    return;
  }
  if (meta.id !== "" || !opts.create) checkId(v, "meta.id", meta.id);
  if (meta.apiversion !== "" && meta.apiversion !== "v1") v.add("meta.apiversion", `"${meta.apiversion.slice(0, 16)}" is not v1`);
  if (!opts.create && meta.version === 0n) v.add("meta.version", "is required: send the version you read");
  v.labels("meta.annotations", meta.annotations);
  v.list("meta.labels", meta.labels, 64, (p, l) => v.text(p, l, 128));
}

function checkQuotas(v: Validator, path: string, q: QuotaSet | undefined): void {
  if (!q) return;
  for (const key of ["machine", "ip", "network", "project"] as const) {
    const max = q[key]?.max;
    if (max !== undefined && max < 0) v.add(`${path}.${key}.max`, "must not be negative");
  }
}

export function validateTenant(t: { meta?: Meta; name: string; description: string; defaultQuotas?: QuotaSet; quotas?: QuotaSet } | undefined, create: boolean): void {
  const v = validator();
  if (!t) return v.add("tenant", "is required").check();
  checkMeta(v, t.meta, { create });
  v.requiredText("tenant.name", t.name, 128).text("tenant.description", t.description, 1024);
  checkQuotas(v, "tenant.default_quotas", t.defaultQuotas);
  checkQuotas(v, "tenant.quotas", t.quotas);
  v.check();
}

export function validateProject(p: { meta?: Meta; name: string; description: string; tenantId: string; quotas?: QuotaSet } | undefined, create: boolean): void {
  const v = validator();
  if (!p) return v.add("project", "is required").check();
  checkMeta(v, p.meta, { create });
  v.requiredText("project.name", p.name, 128).text("project.description", p.description, 1024);
  checkId(v, "project.tenant_id", p.tenantId);
  checkQuotas(v, "project.quotas", p.quotas);
  v.check();
}

export function validateMember(
  path: string,
  m: { meta?: Meta; role: MemberRole } | undefined,
  sides: Record<string, string>,
  create: boolean,
): void {
  const v = validator();
  if (!m) return v.add(path, "is required").check();
  checkMeta(v, m.meta, { create });
  for (const [field, id] of Object.entries(sides)) checkId(v, `${path}.${field}`, id);
  v.enumValue(`${path}.role`, m.role, MemberRole);
  v.check();
}

export function validateIdRequest(id: string): void {
  const v = validator();
  checkId(v, "id", id);
  v.check();
}

/** Find filters: each set one must be a plausible id. */
export function validateFilters(filters: Record<string, string | undefined>, annotations: Record<string, string>): void {
  const v = validator();
  for (const [field, value] of Object.entries(filters)) if (value !== undefined) v.text(field, value, 1024);
  v.labels("annotations", annotations);
  v.check();
}
