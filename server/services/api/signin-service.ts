import type { ServiceImpl } from "@connectrpc/connect";
import type { SignInService } from "../../../gen/metal/api/v1/signin_pb.js";
import { kRequestId } from "../../auth/context.js";
import { toProtoToken } from "../../convert/token.js";
import type { SignIn } from "../../usecases/signin/sign-in.js";
import { validateSignInExchange } from "../../validate/signin.js";

/** OpenID Connect sign-in (docs/signin.md): public, since the caller has no token yet. */
export function createSignInService({ signIn }: { signIn: SignIn }): ServiceImpl<typeof SignInService> {
  return {
    async config() {
      const s = signIn.settings();
      if (!s) return { enabled: false };
      return { enabled: true, issuer: s.issuer, clientId: s.clientId, scopes: [...s.scopes], userClaim: s.userClaim, authorizationEndpoint: await signIn.authorizationEndpoint() };
    },
    async exchange(req, ctx) {
      const proof = validateSignInExchange(req);
      const { row, secret, user, created } = await signIn.exchange(proof, req.description, ctx.values.get(kRequestId));
      return { token: toProtoToken(row), secret, user, created };
    },
  };
}
