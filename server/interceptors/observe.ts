import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { kRequestId } from "../auth/context.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";

/** Codes that describe the caller's request or state; anything else is our fault and becomes Internal. */
const EXPECTED = new Set<Code>([
  Code.Canceled,
  Code.InvalidArgument,
  Code.DeadlineExceeded,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.ResourceExhausted,
  Code.FailedPrecondition,
  Code.Aborted,
  Code.OutOfRange,
  Code.Unimplemented,
  Code.Unavailable,
  Code.Unauthenticated,
]);

/**
 * Outermost interceptor: gives every call a request id (also sent back in the
 * `x-request-id` header), logs and counts it, and turns unexpected exceptions
 * into Internal errors that name the request id but never the cause.
 */
export function createObserveInterceptor(log: Logger, metrics: Metrics): Interceptor {
  return (next) => async (req) => {
    const requestId = req.header.get("x-request-id")?.slice(0, 64) || randomUUID();
    req.contextValues.set(kRequestId, requestId);
    const labels = { service: req.service.typeName, method: req.method.name };
    const stop = metrics.rpcDuration.startTimer(labels);
    const started = performance.now();
    const finish = (code: string, err?: unknown) => {
      stop();
      metrics.rpcHandled.inc({ ...labels, code });
      const entry = { requestId, rpc: `${labels.service}/${labels.method}`, code, ms: Math.round(performance.now() - started) };
      if (err) log.error({ ...entry, err }, "rpc failed unexpectedly");
      else log.debug(entry, "rpc");
    };
    const translate = (err: unknown): ConnectError => {
      const ce = err instanceof ConnectError ? err : undefined;
      if (ce && EXPECTED.has(ce.code)) {
        finish(Code[ce.code]);
        return ce;
      }
      finish(Code[Code.Internal], err);
      return new ConnectError(`internal error (request id ${requestId})`, Code.Internal);
    };
    try {
      const res = await next(req);
      res.header.set("x-request-id", requestId);
      if (!res.stream) {
        finish("Ok");
        return res;
      }
      const inner = res.message;
      async function* guarded() {
        try {
          yield* inner;
          finish("Ok");
        } catch (err) {
          throw translate(err);
        }
      }
      return { ...res, message: guarded() };
    } catch (err) {
      throw translate(err);
    }
  };
}
