import type { ServiceImpl } from "@connectrpc/connect";
import type { TokenService } from "../../../gen/metal/api/v1/token_pb.js";
import { callerOf } from "../../auth/context.js";
import type { ProjectDirectory } from "../../auth/project-directory.js";
import type { TokenAuthority } from "../../auth/token-authority.js";
import { rolesFromProto, toProtoToken } from "../../convert/token.js";
import type { DbHandle } from "../../db/handle.js";
import { excessGrants } from "../../domain/grant.js";
import { notFound, permissionDenied } from "../../errors.js";
import { pageRequest } from "../../repositories/paging.js";
import { tokenRepository as tokens } from "../../repositories/token-repository.js";
import { validateTokenCreate, validateTokenId, validateTokenUpdate } from "../../validate/token.js";

export interface TokenServiceDeps {
  db: DbHandle;
  authority: TokenAuthority;
  projects: ProjectDirectory;
}

/** Resolves the tenant of every project a grant names, so tenant roles count. */
export async function tenantsOfProjects(projects: ProjectDirectory, ids: string[]): Promise<Record<string, string | undefined>> {
  const tenants = await Promise.all(ids.map((id) => projects.tenantOf(id)));
  return Object.fromEntries(ids.map((id, i) => [id, tenants[i]]));
}

/**
 * Callers manage the tokens they could have minted: a token creates narrower
 * ones (recorded as minted from it), lists itself and what was minted from it
 * (at any depth), and revokes any of those, which revokes what was minted from
 * that one in turn. A token never sees or revokes its ancestors or siblings,
 * even of the same subject: a viewer token derived from an owner token cannot
 * touch the owner token. Get, Update and Refresh reach the same tokens as
 * Revoke; any other id is "not found", whether it exists or not. Operators issue independent tokens through the admin
 * TokenService.
 */
export function createTokenService({ db, authority, projects }: TokenServiceDeps): ServiceImpl<typeof TokenService> {
  return {
    async create(req, ctx) {
      const caller = callerOf(ctx);
      const ttl = validateTokenCreate(req);
      const roles = rolesFromProto(req.roles);
      const projectTenants = await tenantsOfProjects(projects, Object.keys(roles.projectRoles));
      const excess = excessGrants(caller, roles, projectTenants);
      if (excess.length > 0) throw permissionDenied(`permission denied: a token can only grant what yours holds: ${excess.join("; ")}`);
      // A derived token never outlives the token that created it.
      const expiresAt = new Date(Math.min(Date.now() + ttl, caller.expiresAt.getTime()));
      const { row, secret } = await authority.issue(db, {
        subject: caller.subject,
        description: req.description,
        roles,
        createdBy: caller.subject,
        expiresAt,
        parentId: caller.tokenId,
        // Checked again against the parent as it is under its lock: a membership removed meanwhile is not handed on.
        excessOverParent: (parentRoles) => excessGrants({ ...caller, roles: parentRoles }, roles, projectTenants),
      });
      return { token: toProtoToken(row), secret };
    },
    async list(req, ctx) {
      const page = await tokens.listLineage(db, callerOf(ctx).tokenId, pageRequest(req.paging));
      return { tokens: page.items.map(toProtoToken), nextPageToken: page.nextPageToken };
    },
    async revoke(req, ctx) {
      validateTokenId(req.id);
      // Parentage never changes, so this check holds for the revocation below.
      if (!(await tokens.isInLineage(db, callerOf(ctx).tokenId, req.id))) throw notFound("token", req.id);
      const [row] = await authority.revoke(db, req.id);
      return { token: toProtoToken(row!) };
    },
    async get(req, ctx) {
      validateTokenId(req.id);
      const row = (await tokens.isInLineage(db, callerOf(ctx).tokenId, req.id)) ? await tokens.find(db, req.id) : undefined;
      if (!row) throw notFound("token", req.id);
      return { token: toProtoToken(row) };
    },
    async update(req, ctx) {
      validateTokenUpdate(req);
      if (!(await tokens.isInLineage(db, callerOf(ctx).tokenId, req.id))) throw notFound("token", req.id);
      const row = await tokens.updateDescription(db, req.id, req.description);
      if (!row) throw notFound("token", req.id);
      return { token: toProtoToken(row) };
    },
    async refresh(req, ctx) {
      const caller = callerOf(ctx);
      // Empty: the calling token itself, the common case (`metalctl token refresh`).
      const id = req.id === "" ? caller.tokenId : req.id;
      validateTokenId(id);
      // The lineage holds only tokens no wider and no longer-lived than the caller's, so the new one is too.
      if (!(await tokens.isInLineage(db, caller.tokenId, id))) throw notFound("token", id);
      const { row, secret, revoked } = await authority.refresh(db, id, caller.subject);
      return { token: toProtoToken(row), secret, revoked: toProtoToken(revoked) };
    },
  };
}
