import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The small vocabulary of errors handlers and repositories throw. Messages are
 * written for the person at the other end: they name the thing and the reason.
 */
export const notFound = (kind: string, id: string) => new ConnectError(`${kind} "${id}" not found`, Code.NotFound);

export const alreadyExists = (kind: string, id: string) => new ConnectError(`${kind} "${id}" already exists`, Code.AlreadyExists);

/** AlreadyExists with a message of its own, for conflicts that are not about an id. */
export const taken = (message: string) => new ConnectError(message, Code.AlreadyExists);

export const conflict = (kind: string, id: string, sent: bigint | number, current: bigint | number) =>
  new ConnectError(`${kind} "${id}" was changed by someone else (you sent version ${sent}, current is ${current}); read it again and retry`, Code.Aborted);

export const failedPrecondition = (message: string) => new ConnectError(message, Code.FailedPrecondition);

export const invalidArgument = (message: string) => new ConnectError(message, Code.InvalidArgument);

export const exhausted = (message: string) => new ConnectError(message, Code.ResourceExhausted);

export const permissionDenied = (message: string) => new ConnectError(message, Code.PermissionDenied);

export const unauthenticated = (message: string) => new ConnectError(message, Code.Unauthenticated);

/** SQLSTATE of a database error, whichever driver (pg, PGlite) or wrapper (drizzle) threw it. */
export function sqlState(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

export const UNIQUE_VIOLATION = "23505";
export const FOREIGN_KEY_VIOLATION = "23503";
export const EXCLUSION_VIOLATION = "23P01";
