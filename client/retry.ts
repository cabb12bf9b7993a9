import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { type BackoffPolicy, backoffDelay, sleep } from "./backoff.js";

/** Codes that say the server or the network had a moment, not that the request is wrong. */
const RETRYABLE = new Set([Code.Unavailable, Code.DeadlineExceeded]);

/**
 * A read: declared free of side effects in the proto, or named like one
 * (Get, List, ...; the contract declares no idempotency levels yet). Only
 * these are retried: a write that timed out may have happened.
 */
export function isReadMethod(method: DescMethod): boolean {
  return method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS || /^(Get|List|Find|Latest|Capacity)([A-Z]|$)/.test(method.name);
}

export interface RetryReadsOptions {
  /** Calls in all, the first included. Default 3. */
  readonly attempts?: number;
  readonly policy?: BackoffPolicy;
  /** Which methods may be retried; default isReadMethod. */
  readonly isRead?: (method: DescMethod) => boolean;
  readonly random?: () => number;
}

const READ_RETRY_POLICY: BackoffPolicy = { initialMs: 100, maxMs: 1_000, jitter: 0.5 };

/**
 * Retries unary reads that failed with Unavailable or DeadlineExceeded, with
 * backoff. Streams, writes, other codes, and a call whose own signal ended
 * (its caller's deadline or cancel) are passed through untouched.
 */
export function retryReads(opts: RetryReadsOptions = {}): Interceptor {
  const attempts = Math.max(1, opts.attempts ?? 3);
  const policy = opts.policy ?? READ_RETRY_POLICY;
  const isRead = opts.isRead ?? isReadMethod;
  return (next) => async (req) => {
    if (req.stream || !isRead(req.method)) return next(req);
    for (let call = 1; ; call++) {
      try {
        return await next(req);
      } catch (err) {
        if (call >= attempts || req.signal.aborted || !RETRYABLE.has(ConnectError.from(err).code)) throw err;
        await sleep(backoffDelay(call, policy, opts.random), req.signal);
        if (req.signal.aborted) throw err;
      }
    }
  };
}
