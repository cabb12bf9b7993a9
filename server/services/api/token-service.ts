import type { ServiceImpl } from "@connectrpc/connect";
import { TokenService } from "../../../gen/metal/api/v1/token_pb.js";
import { callerOf } from "../../auth/context.js";
import type { ProjectDirectory } from "../../auth/project-directory.js";
import type { TokenAuthority } from "../../auth/token-authority.js";
import { rolesFromProto, toProtoToken } from "../../convert/token.js";
import type { Db } from "../../db/database.js";
import { excessGrants } from "../../domain/grant.js";
import { permissionDenied } from "../../errors.js";
import { pageRequest } from "../../repositories/paging.js";
import { tokenRepository as tokens } from "../../repositories/token-repository.js";
import { validateTokenCreate, validateTokenId } from "../../validate/token.js";

export interface TokenServiceDeps {
  db: Db<any>;
  authority: TokenAuthority;
  projects: ProjectDirectory;
}

/** Resolves the tenant of every project a grant names, so tenant roles count. */
export async function tenantsOfProjects(projects: ProjectDirectory, ids: string[]): Promise<Record<string, string | undefined>> {
  const tenants = await Promise.all(ids.map((id) => projects.tenantOf(id)));
  return Object.fromEntries(ids.map((id, i) => [id, tenants[i]]));
}

/** Callers manage their own tokens: issue narrower ones, list them, revoke them. */
export function createTokenService({ db, authority, projects }: TokenServiceDeps): ServiceImpl<typeof TokenService> {
  return {
    async create(req, ctx) {
      const caller = callerOf(ctx);
      const ttl = validateTokenCreate(req);
      const roles = rolesFromProto(req.roles);
      const excess = excessGrants(caller, roles, await tenantsOfProjects(projects, Object.keys(roles.projectRoles)));
      if (excess.length > 0) throw permissionDenied(`permission denied: a token can only grant what yours holds: ${excess.join("; ")}`);
      // A derived token never outlives the token that created it.
      const expiresAt = new Date(Math.min(Date.now() + ttl, caller.expiresAt.getTime()));
      const { row, secret } = await authority.issue(db, {
        subject: caller.subject,
        description: req.description,
        roles,
        createdBy: caller.subject,
        expiresAt,
      });
      return { token: toProtoToken(row), secret };
    },
    async list(req, ctx) {
      const page = await tokens.list(db, pageRequest(req.paging), callerOf(ctx).subject);
      return { tokens: page.items.map(toProtoToken), nextPageToken: page.nextPageToken };
    },
    async revoke(req, ctx) {
      validateTokenId(req.id);
      const row = await tokens.revoke(db, req.id, callerOf(ctx).subject);
      authority.forget(row.id);
      return { token: toProtoToken(row) };
    },
  };
}
