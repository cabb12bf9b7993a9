import type { DescMethod } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";

/**
 * Method names that only read. Every other unary call may have changed a
 * machine or a switch (the change log's triggers know; this interceptor does
 * not need to), so it wakes the Watch readers after it succeeded. A wake-up
 * too many costs one read of the log that finds nothing; one too few, the
 * safety net's delay (WatchHub: 1 s).
 */
const READ_ONLY = /^(Get|List|Find|Events|Issues|Commands|Try|Latest|Capacity|Suggest|Usage|Check|Info|Whoami|Version|ConsolePassword)/;

/** Packages whose writes never touch the change log's tables (masterdata has its own database; the health protocol reads). */
const UNLOGGED = /^(masterdata\.|grpc\.)/;

/** Whether a successful call of this method may have committed a change the change log recorded. */
export function mayChange(method: DescMethod): boolean {
  return method.methodKind === "unary" && !UNLOGGED.test(method.parent.typeName) && !READ_ONLY.test(method.name);
}

/**
 * Wakes the Watch readers (`notify`, coalesced per tick: see
 * sessions/watch/notify.ts) after every successful unary call that is not
 * read-only. Central, so no handler can forget it; the response is already
 * computed, i.e. the transaction committed. Streams that write (the Wait
 * lease, switch sync reports) notify where they write.
 */
export function createChangeNotifyInterceptor(notify: () => void): Interceptor {
  return (next) => async (req) => {
    const res = await next(req);
    if (mayChange(req.method)) notify();
    return res;
  };
}
