import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { type Permission, Visibility } from "../../gen/metal/api/v1/common_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { kPrincipal, kVerifiedEarly } from "../auth/context.js";
import type { MachineCredentials } from "../auth/machine-credential.js";
import { permissionOf } from "../auth/permissions.js";
import type { ProjectDirectory } from "../auth/project-directory.js";
import type { ReplicaCredentials } from "../auth/replica-credential.js";
import type { TokenAuthority } from "../auth/token-authority.js";
import { authorize, type Target } from "../domain/authorize.js";
import type { Principal } from "../domain/roles.js";
import { unauthenticated } from "../errors.js";

/** All that deciding a call needs of the token authority (masterdata-api has only this: server/masterdata/auth/token-verifier.ts). */
type TokenVerifier = Pick<TokenAuthority, "verify">;

/** The scope fields a permission can refer to, read from a request message. */
function targetOf(message: unknown): Target {
  const m = message as Record<string, unknown>;
  const str = (k: string) => (typeof m?.[k] === "string" ? (m[k] as string) : undefined);
  const events = Array.isArray(m?.events) ? (m.events as { machineId?: unknown }[]) : undefined;
  const machineIds = typeof m?.machineId === "string" ? [m.machineId] : events?.map((e) => (typeof e?.machineId === "string" ? e.machineId : ""));
  return { project: str("project"), tenant: str("tenant"), partition: str("partition"), machineIds };
}

/** The stream again, from its first message on (already taken from `it`). Module level: see `guarded` in observe.ts. */
async function* replay<T>(head: IteratorResult<T>, it: AsyncIterator<T>): AsyncGenerator<T> {
  if (head.done) return;
  yield head.value;
  for (;;) {
    const n = await it.next();
    if (n.done) return;
    yield n.value;
  }
}

/** Pulls the first message of a request stream and hands back a stream that still yields it. */
async function peekFirst<T>(stream: AsyncIterable<T>): Promise<{ first: T | undefined; stream: AsyncIterable<T> }> {
  const it = stream[Symbol.asyncIterator]();
  const head = await it.next();
  return { first: head.done ? undefined : head.value, stream: replay(head, it) };
}

/**
 * The caller behind an Authorization header, undefined without one. A
 * malformed, invalid, expired or revoked token is Unauthenticated, except on
 * a public method: it works without a token, so a bad one need not stop it.
 */
export async function authenticate(authority: TokenVerifier, perm: Permission, header: string | null | undefined, machines?: MachineCredentials): Promise<Principal | undefined> {
  if (header === null || header === undefined) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  try {
    if (!m) throw unauthenticated("the Authorization header must be 'Bearer <token>'");
    // A machine credential is checked only where a machine may call at all: anywhere else it is not looked up.
    if (machines?.isMachineCredential(m[1]!)) {
      if (!perm.machine) throw new ConnectError("permission denied: a machine credential may call only metal-hammer's methods", Code.PermissionDenied);
      return await machines.verify(m[1]!);
    }
    return await authority.verify(m[1]!);
  } catch (err) {
    if (perm.visibility !== Visibility.PUBLIC) throw err;
    return undefined;
  }
}

/**
 * Why a call to a method reserved for replicas (permission `replica`) is
 * refused, or undefined for a valid replica credential. A metal token of any
 * kind (tenant, operator admin, infra) is PermissionDenied, so its holder
 * learns the method is not for them; anything else is Unauthenticated.
 */
async function replicaRefusal(authority: TokenVerifier, replicas: ReplicaCredentials | undefined, header: string | null | undefined): Promise<ConnectError | undefined> {
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!m) return new ConnectError("this method takes only a control-plane replica's credential: send 'Authorization: Bearer <replica credential>'", Code.Unauthenticated);
  const secret = m[1]!;
  if (
    replicas &&
    (await replicas.verify(secret).then(
      () => true,
      () => false,
    ))
  )
    return undefined;
  if (
    await authority.verify(secret).then(
      () => true,
      () => false,
    )
  ) {
    return new ConnectError("permission denied: only the control plane's replicas may call this method; metal tokens (tenant, operator, infra) are not accepted", Code.PermissionDenied);
  }
  return new ConnectError("this method takes only a control-plane replica's credential", Code.Unauthenticated);
}

/**
 * Why a call to `method` with this Authorization header can never pass, or
 * undefined when it might: no token, or one that is not valid, for a method
 * that is not public. The answer is the interceptor's own (same code, same
 * message), given before the request body is read (see server/http/connect-handler.ts);
 * what the caller may do is still decided by the interceptor alone.
 */
export async function refusalBeforeBody(
  authority: TokenVerifier,
  method: DescMethod,
  header: string | null | undefined,
  values?: ContextValues,
  replicas?: ReplicaCredentials,
  machines?: MachineCredentials,
): Promise<ConnectError | undefined> {
  const perm = permissionOf(method);
  if (perm.replica) return replicaRefusal(authority, replicas, header);
  if (perm.visibility === Visibility.PUBLIC) return undefined;
  let principal: Principal | undefined;
  try {
    principal = await authenticate(authority, perm, header, machines);
  } catch (err) {
    // Only a verdict on the token is an answer here. Anything else (the token row could not be read) is
    // the interceptors' to report: as Internal naming the request id, logged, never the query and its
    // parameters (the token id) that the error carries.
    if (err instanceof ConnectError && (err.code === Code.Unauthenticated || err.code === Code.PermissionDenied)) return err;
    return undefined;
  }
  if (principal) {
    // Verified once: the interceptor takes it from here (same header, same call).
    values?.set(kVerifiedEarly, principal);
    return undefined;
  }
  const decision = authorize(undefined, perm, {});
  return decision.allow || decision.code !== "unauthenticated" ? undefined : new ConnectError(decision.message, Code.Unauthenticated);
}

/**
 * The one place where callers are authenticated and authorized: every method's
 * permission comes from its declaration (see permissionOf); handlers only read
 * the principal this puts into the context.
 */
export function createAuthInterceptor(deps: { authority: TokenVerifier; projects: ProjectDirectory; replicas?: ReplicaCredentials; machines?: MachineCredentials }): Interceptor {
  return (next) => async (req) => {
    const perm = permissionOf(req.method);
    if (perm.replica) {
      // Decided on the credential alone, before a message is read; there is no metal principal.
      const refusal = await replicaRefusal(deps.authority, deps.replicas, req.header.get("authorization"));
      if (refusal) throw refusal;
      req.contextValues.set(kPrincipal, undefined);
      return next(req);
    }
    const principal = req.contextValues.get(kVerifiedEarly) ?? (await authenticate(deps.authority, perm, req.header.get("authorization"), deps.machines));
    req.contextValues.set(kPrincipal, principal);
    // Issued before the machine's installation succeeded: only repeating that call (idempotent) is left to it.
    if (principal?.machine?.superseded && req.method !== BootService.method.installationSucceeded) {
      throw unauthenticated("the machine credential is void: the machine's installation succeeded since it was issued; a new boot gets a new one");
    }

    let target: Target;
    if (req.stream) {
      const peeked = await peekFirst(req.message);
      target = targetOf(peeked.first);
      req = { ...req, message: peeked.stream };
    } else {
      target = targetOf(req.message);
    }
    let decision = authorize(principal, perm, target);
    if (!decision.allow && decision.code === "needs_project_tenant") {
      decision = authorize(principal, perm, target, (await deps.projects.tenantOf(target.project!)) ?? "");
    }
    if (!decision.allow) {
      throw new ConnectError(decision.message, decision.code === "unauthenticated" ? Code.Unauthenticated : Code.PermissionDenied);
    }
    return next(req);
  };
}
