import { type DescMethod, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor, type StreamResponse, type UnaryResponse } from "@connectrpc/connect";
import { ConsoleService } from "../../gen/metal/api/v1/console_pb.js";
import { kPrincipal, kRequestId } from "../auth/context.js";
import { permissionOf } from "../auth/permissions.js";
import type { DbHandle } from "../db/handle.js";
import { type TransactionHook, transactionHooks } from "../db/transaction-hook.js";
import { isAudited, withCreatedTargets } from "../domain/audit.js";
import type { Logger } from "../logger.js";
import { type AuditEntry, auditTrail, errorMessageOf, newEntry, outcomeOf } from "../usecases/audit/entries.js";

/**
 * Records every audited call (server/domain/audit.ts) in the audit trail,
 * once (docs/audit.md). The entry rides in the first transaction of the call
 * on the metal database (`inTransaction`, through a transaction hook), so the
 * change and its entry commit or roll back together. A call that wrote
 * nothing there (it failed, or changed only masterdata, or nothing) gets its
 * entry after it ended, in a transaction of its own; a call that failed after
 * its entry committed gets the entry's outcome set to its error.
 *
 * Runs before the auth interceptor, so that a refused call with a valid token
 * is recorded too; calls without a verified caller are not (outsiders must
 * not be able to fill the table). Browser console sessions
 * (ConsoleService.Attach, a stream) are recorded when they open or are refused.
 */
export function createAuditInterceptor(deps: { db: DbHandle; log: Logger }): Interceptor {
  const { db, log } = deps;
  const audited = (req: Parameters<Parameters<Interceptor>[0]>[0]) => auditsMethod(req.method);

  const entryOf = (req: Parameters<Parameters<Interceptor>[0]>[0], streamed?: unknown): AuditEntry | undefined => {
    const principal = req.contextValues.get(kPrincipal);
    if (!principal || principal.machine) return undefined;
    let request: unknown;
    try {
      const message = req.stream ? streamed : req.message;
      request = message === undefined ? {} : toJson(req.method.input, message as never);
    } catch {
      request = { unrecordable: true };
    }
    return newEntry({ method: `/${req.method.parent.typeName}/${req.method.name}`, principal, requestId: req.contextValues.get(kRequestId), request });
  };

  /** Writes the entry of a call that ended without one, logging (never failing the call) when that fails. */
  const recordAfter = (entry: AuditEntry) => auditTrail.record(db, entry).catch((err: unknown) => log.error({ err, rpc: entry.method, requestId: entry.requestId }, "writing the audit entry failed"));

  const recordFailure = async (entry: AuditEntry | undefined, err: unknown) => {
    if (!entry) return;
    const e = ConnectError.from(err);
    await recordAfter({ ...entry, outcome: outcomeOf(e.code), errorMessage: errorMessageOf(e.code, e.rawMessage) });
  };

  return (next) => async (req) => {
    if (!audited(req)) return next(req);
    if (req.method === ConsoleService.method.attach) {
      // A stream: no transaction hook (the session outlives the call); recorded as it opens or is refused.
      // Its one request message is taken ahead (as the auth interceptor does) and handed on again.
      let first: unknown;
      if (req.stream) {
        const it = req.message[Symbol.asyncIterator]();
        const head = await it.next();
        first = head.done ? undefined : head.value;
        req = { ...req, message: replay(head, it) };
      }
      let res: StreamResponse | UnaryResponse;
      try {
        res = await next(req);
      } catch (err) {
        await recordFailure(entryOf(req, first), err);
        throw err;
      }
      return recordStreamOpen(res, () => entryOf(req, first), recordAfter);
    }
    let entry: AuditEntry | undefined;
    // idle: no transaction carries the entry yet; pending: one is running with it; written: it committed; closed: the call ended.
    let state: "idle" | "pending" | "written" | "closed" = "idle";
    let pendingSettled: Promise<void> = Promise.resolve();
    let settle = () => {};
    // Ids the call created (noteCreated): those of the transaction carrying the entry count only if it commits.
    const created: string[] = [];
    let createdPending: string[] = [];
    // The project of the resource acted on (noteProject), for requests that name none.
    let concerned: string | null = null;
    const entryNow = () => {
      entry ??= entryOf(req);
      return entry && { ...entry, targetIds: withCreatedTargets(entry.targetIds, [...created, ...createdPending]), project: entry.project ?? concerned };
    };
    const hook: TransactionHook = {
      claim(handle) {
        if (handle !== db || state !== "idle") return false;
        // The principal is known from here on: the auth interceptor ran before any handler's transaction.
        entry ??= entryOf(req);
        if (!entry) return false;
        state = "pending";
        createdPending = [];
        pendingSettled = new Promise<void>((resolve) => {
          settle = resolve;
        });
        return true;
      },
      beforeCommit: (tx) => auditTrail.record(tx as DbHandle, entryNow()!),
      settled(committed) {
        state = committed ? "written" : "idle";
        if (committed) created.push(...createdPending);
        createdPending = [];
        settle();
      },
      concerns(project) {
        concerned ??= project;
      },
      created(ids) {
        // Made after the entry was written (a later transaction of the call): not named; docs/audit.md.
        if (state === "pending") createdPending.push(...ids);
        else if (state === "idle") created.push(...ids);
      },
    };
    const ended = async (): Promise<boolean> => {
      // A transaction still running with the entry (work the handler left behind) decides for it.
      if (state === "pending") await pendingSettled;
      const written = state === "written";
      state = "closed";
      return written;
    };
    try {
      const res = await transactionHooks.run(hook, () => next(req));
      if (!(await ended())) {
        const now = entryNow();
        if (now) await recordAfter(now);
      }
      return res;
    } catch (err) {
      const e = ConnectError.from(err);
      const written = await ended();
      const now = entryNow();
      if (now) {
        const outcome = outcomeOf(e.code);
        const message = errorMessageOf(e.code, e.rawMessage);
        if (written) await auditTrail.markFailed(db, now.id, outcome, message).catch((err2: unknown) => log.error({ err: err2, rpc: now.method }, "writing the audit outcome failed"));
        else await recordAfter({ ...now, outcome, errorMessage: message });
      }
      throw err;
    }
  };
}

/** Whether calls of `method` are recorded: the rule of server/domain/audit.ts, and browser console sessions (a stream). */
export function auditsMethod(method: DescMethod): boolean {
  return method === ConsoleService.method.attach || isAudited({ service: method.parent.typeName, name: method.name, unary: method.methodKind === "unary", permission: permissionOf(method) });
}

/** A console session opens with its first message and is refused with an error before one: record whichever comes. */
function recordStreamOpen(res: StreamResponse | UnaryResponse, entryOf: () => AuditEntry | undefined, record: (e: AuditEntry) => Promise<void>): StreamResponse {
  const stream = res as StreamResponse;
  let recorded = false;
  const once = async (outcome?: { code: number; message: string }) => {
    if (recorded) return;
    recorded = true;
    const entry = entryOf();
    if (!entry) return;
    await record(outcome ? { ...entry, outcome: outcomeOf(outcome.code), errorMessage: errorMessageOf(outcome.code, outcome.message) } : entry);
  };
  async function* watched() {
    try {
      for await (const m of stream.message) {
        await once();
        yield m;
      }
    } catch (err) {
      const e = ConnectError.from(err);
      await once({ code: e.code, message: e.rawMessage });
      throw err;
    } finally {
      // Ended (or was cancelled) before its first message and without an error: it opened nothing, but was asked for.
      await once({ code: Code.Canceled, message: "the session ended before it opened" });
    }
  }
  return { ...stream, message: watched() };
}

/** The request stream again, from its first message on (already taken from `it`). */
async function* replay<T>(head: IteratorResult<T>, it: AsyncIterator<T>): AsyncGenerator<T> {
  if (head.done) return;
  yield head.value;
  for (;;) {
    const n = await it.next();
    if (n.done) return;
    yield n.value;
  }
}
