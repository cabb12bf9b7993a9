import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { ReplicaCredentials } from "../../auth/replica-credential.js";
import type { TokenAuthority } from "../../auth/token-authority.js";

/**
 * The only way into metal.internal.v1: a replica's credential as the bearer
 * token (see server/auth/replica-credential.ts), checked before a message of
 * the call is read. Registered as the service's own interceptor list, which
 * Connect puts in place of the API's (auth, stream limits): those are for
 * metal tokens, and a metal token of any kind (tenant, operator admin, infra)
 * is refused here, with PermissionDenied so that its holder learns the method
 * is not for them; anything else is Unauthenticated.
 */
export function replicaGate(credentials: ReplicaCredentials, authority: TokenAuthority): Interceptor {
  return (next) => async (req) => {
    const header = req.header.get("authorization");
    const m = header === null ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw new ConnectError("this method takes only a control-plane replica's credential: send 'Authorization: Bearer <replica credential>'", Code.Unauthenticated);
    try {
      await credentials.verify(m[1]!);
    } catch (err) {
      const isMetalToken = await authority.verify(m[1]!).then(
        () => true,
        () => false,
      );
      if (isMetalToken) throw new ConnectError("permission denied: only the control plane's replicas may call this method; metal tokens (tenant, operator, infra) are not accepted", Code.PermissionDenied);
      throw err;
    }
    return next(req);
  };
}
