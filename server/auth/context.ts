import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Principal } from "../domain/roles.js";
import { unauthenticated } from "../errors.js";

/** The verified caller, set by the auth interceptor; undefined on public calls without a token. */
export const kPrincipal = createContextKey<Principal | undefined>(undefined, { description: "principal" });

/**
 * The caller as the early check (before the body is read) verified it from
 * this call's Authorization header, so the auth interceptor does not verify
 * the same token twice; unset when the early check did not verify one.
 */
export const kVerifiedEarly = createContextKey<Principal | undefined>(undefined, { description: "principal verified before the body" });

/** The request id the logging interceptor assigned; echoed in Internal errors and logs. */
export const kRequestId = createContextKey<string>("", { description: "request id" });

/** The caller of a method that is not public (the interceptor has already checked it). */
export function callerOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(kPrincipal);
  if (!p) throw unauthenticated("this call needs a token");
  return p;
}
