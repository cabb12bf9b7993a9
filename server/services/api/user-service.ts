import type { ServiceImpl } from "@connectrpc/connect";
import type { ProjectRole, TenantRole } from "../../../gen/metal/api/v1/common_pb.js";
import type { UserService } from "../../../gen/metal/api/v1/user_pb.js";
import { callerOf } from "../../auth/context.js";
import { toProtoToken } from "../../convert/token.js";
import type { DbHandle } from "../../db/handle.js";
import { notFound } from "../../errors.js";
import { tokenRepository as tokens } from "../../repositories/token-repository.js";
import type { Masterdata } from "../../usecases/tenancy/masterdata.js";
import { projectsOf, tenantsOf } from "../../usecases/tenancy/memberships.js";

/**
 * whoami: the subject and the token (with its roles) of the call, and the
 * subject's tenants and projects as masterdata has them now (docs/tenancy.md).
 */
export function createUserService({ db, md }: { db: DbHandle; md?: Masterdata }): ServiceImpl<typeof UserService> {
  return {
    async get(_req, ctx) {
      const caller = callerOf(ctx);
      const row = await tokens.find(db, caller.tokenId);
      if (!row) throw notFound("token", caller.tokenId);
      const mine = md ? await tenantsOf(md, caller.subject) : [];
      const projects = md ? await projectsOf(md, caller.subject, mine) : [];
      return {
        user: {
          subject: caller.subject,
          token: toProtoToken(row),
          tenants: mine.map((m) => ({ tenant: m.tenant.meta?.id ?? "", name: m.tenant.name, role: m.role as number as TenantRole })),
          projects: projects.map((p) => ({ project: p.project.meta?.id ?? "", name: p.project.name, tenant: p.project.tenantId, role: p.role as number as ProjectRole, inherited: p.inherited })),
        },
      };
    },
  };
}
