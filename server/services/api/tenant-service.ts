import type { ServiceImpl } from "@connectrpc/connect";
import type { TenantRole } from "../../../gen/metal/api/v1/common_pb.js";
import type { TenantService } from "../../../gen/metal/api/v1/tenant_pb.js";
import { callerOf } from "../../auth/context.js";
import { toApiTenant, toTenantInvite, toTenantMember } from "../../convert/tenancy.js";
import { invite, inviteAccept, inviteDelete, inviteGet, invitesList } from "../../usecases/tenancy/invitations.js";
import type { TenancyDeps } from "../../usecases/tenancy/masterdata.js";
import { removeMember, updateMember } from "../../usecases/tenancy/members.js";
import { tenantsOf } from "../../usecases/tenancy/memberships.js";
import { getTenant, updateTenant } from "../../usecases/tenancy/tenants.js";
import { validateInvite, validateInviteDelete, validateMember, validateSecret, validateTarget, validateUpdate } from "../../validate/tenancy.js";

/** Tenant self-service (docs/tenancy.md); the permission options decide who may call what. */
export function createTenantService(deps: TenancyDeps): ServiceImpl<typeof TenantService> {
  const { md } = deps;
  return {
    async get(req) {
      validateTarget("tenant", req.tenant);
      const { tenant, members } = await getTenant(md, req.tenant);
      return { tenant: toApiTenant(tenant), members: members.map((m) => toTenantMember(m.id, m.role, m.createdAt)) };
    },
    async update(req) {
      validateUpdate("tenant", { id: req.tenant, name: req.name, description: req.description });
      return { tenant: toApiTenant(await updateTenant(md, { tenantId: req.tenant, version: req.version, name: req.name, description: req.description })) };
    },
    async list(_req, ctx) {
      const mine = await tenantsOf(md, callerOf(ctx).subject);
      return { tenants: mine.map((m) => toApiTenant(m.tenant)), roles: Object.fromEntries(mine.map((m) => [m.tenant.meta?.id ?? "", m.role as number as TenantRole])) };
    },
    async invite(req, ctx) {
      const role = validateInvite("tenant", { id: req.tenant, role: req.role, expiresIn: req.expiresIn });
      const r = await invite(md, "tenant", req.tenant, role, callerOf(ctx).subject, req.expiresIn);
      return { invite: toTenantInvite(r.invitation, r.name), secret: r.secret };
    },
    async inviteGet(req) {
      validateSecret(req.secret);
      const r = await inviteGet(md, "tenant", req.secret);
      return { invite: toTenantInvite(r.invitation, r.name) };
    },
    async inviteAccept(req, ctx) {
      validateSecret(req.secret);
      const r = await inviteAccept(md, "tenant", req.secret, callerOf(ctx).subject);
      return { tenant: r.invitation.tenantId, tenantName: r.name, role: r.invitation.role as number as TenantRole };
    },
    async invitesList(req) {
      validateTarget("tenant", req.tenant);
      const r = await invitesList(md, "tenant", req.tenant);
      return { invites: r.invitations.map((i) => toTenantInvite(i, r.name)) };
    },
    async inviteDelete(req) {
      validateInviteDelete("tenant", req.tenant, req.id);
      const r = await inviteDelete(md, "tenant", req.tenant, req.id);
      return { invite: toTenantInvite(r.invitation, r.name) };
    },
    async memberUpdate(req) {
      const role = validateMember("tenant", req.tenant, req.member, req.role);
      await updateMember(deps, "tenant", req.tenant, req.member, role);
      return { member: toTenantMember(req.member, role, undefined) };
    },
    async memberRemove(req) {
      validateMember("tenant", req.tenant, req.member);
      const r = await removeMember(deps, "tenant", req.tenant, req.member);
      return { member: toTenantMember(req.member, r.previous, undefined) };
    },
    async leave(req, ctx) {
      validateTarget("tenant", req.tenant);
      const subject = callerOf(ctx).subject;
      const r = await removeMember(deps, "tenant", req.tenant, subject);
      return { member: toTenantMember(subject, r.previous, undefined) };
    },
  };
}
