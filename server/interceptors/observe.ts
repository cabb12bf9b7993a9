import { randomUUID } from "node:crypto";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { safeError } from "../../client/log-redaction.js";
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
 * One method's metric series, looked up once: prom-client otherwise turns the
 * label object into a key on every observation.
 */
class MethodSeries {
  readonly rpc: string;
  readonly duration: ReturnType<Metrics["rpcDuration"]["labels"]>;
  private readonly handled = new Map<string, ReturnType<Metrics["rpcHandled"]["labels"]>>();

  constructor(
    private readonly metrics: Metrics,
    private readonly service: string,
    private readonly method: string,
  ) {
    this.rpc = `${service}/${method}`;
    this.duration = metrics.rpcDuration.labels(service, method);
  }

  handledWith(code: string) {
    let counter = this.handled.get(code);
    if (!counter) this.handled.set(code, (counter = this.metrics.rpcHandled.labels(this.service, this.method, code)));
    return counter;
  }
}

/**
 * One call being observed: its request id, series and start, and how it
 * ends. A class rather than closures: a stream keeps this for its whole
 * life, and thousands of Wait streams are open at once.
 */
class ObservedCall {
  private readonly started = performance.now();

  constructor(
    readonly requestId: string,
    private readonly series: MethodSeries,
    private readonly log: Logger,
  ) {}

  finish(code: string, err?: unknown): void {
    const ms = performance.now() - this.started;
    this.series.duration.observe(ms / 1000);
    this.series.handledWith(code).inc();
    // The logger makes errors safe too; doing it here as well keeps this path safe with any logger:
    // a failed query's parameters (passwords, user data, SSH keys) never reach the log.
    if (err) this.log.error({ ...this.entry(code, ms), err: safeError(err) }, "rpc failed unexpectedly");
    else if (this.log.isLevelEnabled("debug")) this.log.debug(this.entry(code, ms), "rpc");
  }

  private entry(code: string, ms: number) {
    return { requestId: this.requestId, rpc: this.series.rpc, code, ms: Math.round(ms) };
  }

  /** The error the caller sees: expected codes as they are, anything else as Internal naming the request id only. */
  translate(err: unknown): ConnectError {
    const ce = err instanceof ConnectError ? err : undefined;
    if (ce && EXPECTED.has(ce.code)) {
      this.finish(Code[ce.code]);
      return ce;
    }
    this.finish(Code[Code.Internal], err);
    return new ConnectError(`internal error (request id ${this.requestId})`, Code.Internal);
  }
}

/** A response stream that reports its end to its call: finished when it completes, translated when it fails. */
class ObservedStream<T> implements AsyncIterableIterator<T> {
  private it: AsyncIterator<T> | undefined;

  constructor(
    private readonly inner: AsyncIterable<T>,
    private readonly call: ObservedCall,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<T>> {
    try {
      const r = await (this.it ??= this.inner[Symbol.asyncIterator]()).next();
      if (r.done) this.call.finish("Ok");
      return r;
    } catch (err) {
      throw this.call.translate(err);
    }
  }

  /** The consumer stopped early (the client went away): the inner stream is ended too, the call is not counted as done. */
  async return(value?: unknown): Promise<IteratorResult<T>> {
    await this.it?.return?.(value);
    return { done: true, value: value as T };
  }
}

/**
 * Outermost interceptor: gives every call a request id (also sent back in the
 * `x-request-id` header), logs and counts it, and turns unexpected exceptions
 * into Internal errors that name the request id but never the cause.
 */
export function createObserveInterceptor(log: Logger, metrics: Metrics): Interceptor {
  const seriesOf = new WeakMap<DescMethod, MethodSeries>();
  return (next) => async (req) => {
    let series = seriesOf.get(req.method);
    if (!series) seriesOf.set(req.method, (series = new MethodSeries(metrics, req.service.typeName, req.method.name)));
    const call = new ObservedCall(req.header.get("x-request-id")?.slice(0, 64) || randomUUID(), series, log);
    req.contextValues.set(kRequestId, call.requestId);
    try {
      const res = await next(req);
      res.header.set("x-request-id", call.requestId);
      if (!res.stream) {
        call.finish("Ok");
        return res;
      }
      return { ...res, message: new ObservedStream(res.message, call) };
    } catch (err) {
      throw call.translate(err);
    }
  };
}
