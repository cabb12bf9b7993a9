import type { ServiceImpl } from "@connectrpc/connect";
import type { UserService } from "../../../gen/metal/api/v1/user_pb.js";
import { callerOf } from "../../auth/context.js";
import { toProtoToken } from "../../convert/token.js";
import type { DbHandle } from "../../db/handle.js";
import { notFound } from "../../errors.js";
import { tokenRepository as tokens } from "../../repositories/token-repository.js";

/** whoami: the subject and the token (with its roles) of the call. */
export function createUserService({ db }: { db: DbHandle }): ServiceImpl<typeof UserService> {
  return {
    async get(_req, ctx) {
      const caller = callerOf(ctx);
      const row = await tokens.find(db, caller.tokenId);
      if (!row) throw notFound("token", caller.tokenId);
      return { user: { subject: caller.subject, token: toProtoToken(row) } };
    },
  };
}
