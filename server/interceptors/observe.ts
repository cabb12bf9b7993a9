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
 * A response stream that reports its end. A module-level generator on
 * purpose: a generator function declared inside the interceptor would be a
 * new function object per call, with a prototype and hidden classes of its
 * own, which every one of thousands of open streams would keep.
 */
async function* guarded<T>(inner: AsyncIterable<T>, finish: (code: string) => void, translate: (err: unknown) => ConnectError): AsyncGenerator<T> {
  try {
    yield* inner;
    finish("Ok");
  } catch (err) {
    throw translate(err);
  }
}

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
      return { ...res, message: guarded(res.message, finish, translate) };
    } catch (err) {
      throw translate(err);
    }
  };
}
