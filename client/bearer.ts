import type { Interceptor } from "@connectrpc/connect";

/** Where a token comes from when it can change while a client lives (a rotated file, a refreshed login). */
export type TokenProvider = () => string | undefined | Promise<string | undefined>;

/**
 * Sends a bearer token on every call. A provider is asked on each call, so a
 * rotated token is picked up without a new transport; when it has none, the
 * call goes without one (the server then answers Unauthenticated).
 */
export function bearer(token: string | TokenProvider): Interceptor {
  if (typeof token === "string") {
    const value = `Bearer ${token}`;
    return (next) => (req) => {
      req.header.set("authorization", value);
      return next(req);
    };
  }
  return (next) => async (req) => {
    const t = await token();
    if (t) req.header.set("authorization", `Bearer ${t}`);
    return next(req);
  };
}
