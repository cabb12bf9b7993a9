import type { ServiceImpl } from "@connectrpc/connect";
import type { TokenService } from "../../../gen/metal/admin/v1/token_pb.js";
import { callerOf } from "../../auth/context.js";
import type { TokenAuthority } from "../../auth/token-authority.js";
import { rolesFromProto, toProtoSigningKey, toProtoToken } from "../../convert/token.js";
import type { DbHandle } from "../../db/handle.js";
import { notFound } from "../../errors.js";
import { pageRequest } from "../../repositories/paging.js";
import { tokenRepository as tokens } from "../../repositories/token-repository.js";
import { subject, validateTokenCreate, validateTokenId, validateTokenUpdate } from "../../validate/token.js";
import { validator } from "../../validate/validator.js";

export interface AdminTokenServiceDeps {
  db: DbHandle;
  authority: TokenAuthority;
}

/**
 * Operators issue tokens for users and edge daemons and revoke any token.
 * A token issued here stands on its own (no parent): revoking the operator's
 * token does not take the infra and user tokens it issued with it; revoking
 * any token takes what was minted from it through the tenant TokenService.
 */
export function createAdminTokenService({ db, authority }: AdminTokenServiceDeps): ServiceImpl<typeof TokenService> {
  return {
    async create(req, ctx) {
      const ttl = validateTokenCreate(req);
      const { row, secret } = await authority.issue(db, {
        subject: req.subject,
        description: req.description,
        roles: rolesFromProto(req.roles),
        createdBy: callerOf(ctx).subject,
        expiresAt: new Date(Date.now() + ttl),
      });
      return { token: toProtoToken(row), secret };
    },
    async list(req) {
      if (req.subject !== "") {
        const v = validator();
        subject(v, "subject", req.subject);
        v.check();
      }
      const page = await tokens.list(db, pageRequest(req.paging), req.subject === "" ? undefined : req.subject);
      return { tokens: page.items.map(toProtoToken), nextPageToken: page.nextPageToken };
    },
    async revoke(req) {
      validateTokenId(req.id);
      // Also revokes every token minted from this one (at any depth).
      const [row] = await authority.revoke(db, req.id);
      return { token: toProtoToken(row!) };
    },
    async get(req) {
      validateTokenId(req.id);
      const row = await tokens.find(db, req.id);
      if (!row) throw notFound("token", req.id);
      return { token: toProtoToken(row) };
    },
    async update(req) {
      validateTokenUpdate(req);
      const row = await tokens.updateDescription(db, req.id, req.description);
      if (!row) throw notFound("token", req.id);
      return { token: toProtoToken(row) };
    },
    async refresh(req, ctx) {
      validateTokenId(req.id);
      // Operators refresh any token, as they may issue any: the new one keeps the old one's parent and lifetime.
      const { row, secret, revoked } = await authority.refresh(db, req.id, callerOf(ctx).subject);
      return { token: toProtoToken(row), secret, revoked: toProtoToken(revoked) };
    },
    async rotateSigningKey() {
      const r = await authority.rotateSigningKey(db);
      return { key: toProtoSigningKey(r.key), kept: r.kept.map(toProtoSigningKey), retiredIds: r.retiredIds };
    },
  };
}
