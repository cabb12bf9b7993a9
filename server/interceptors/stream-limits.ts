import type { DescMethod } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { Visibility } from "../../gen/metal/api/v1/common_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { kPrincipal } from "../auth/context.js";
import { permissionOf } from "../auth/permissions.js";
import type { StreamLimit, StreamLimitSettings } from "../config.js";
import { exhausted } from "../errors.js";
import { addressOf, type Connection, kConnection } from "../http/peer.js";

/** Long-lived streams are limited by class: what anyone may open, what every waiting machine holds, the rest. */
export type StreamClass = keyof StreamLimitSettings;

/** The class of a method's calls, undefined for unary methods (they end on their own). */
export function streamClassOf(method: DescMethod): StreamClass | undefined {
  if (method.methodKind === "unary") return undefined;
  if (permissionOf(method).visibility === Visibility.PUBLIC) return "public";
  if (method === BootService.method.wait) return "wait";
  if (method.name === "Watch" && method.parent.typeName.endsWith(".MachineService")) return "watch";
  return "session";
}

/**
 * One open stream's place in the counts. It is its own abort listener (no
 * closure per stream: thousands of Wait streams hold one each) and gives its
 * place back once, when the call's signal ends (Connect and the lean path
 * both abort it when a call is over, however it ended).
 */
class Lease {
  private held = true;
  constructor(
    private readonly registry: StreamLimits,
    readonly cls: StreamClass,
    readonly principal: string,
    readonly connection: Connection | undefined,
  ) {}

  handleEvent(): void {
    this.release();
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    this.registry.release(this);
  }
}

const bump = <K>(m: Map<K, number>, k: K, by: number) => {
  const n = (m.get(k) ?? 0) + by;
  if (n <= 0) m.delete(k);
  else m.set(k, n);
};

/** Counts of open streams per class, in total, per principal and per connection; a stream over any limit is refused. */
export class StreamLimits {
  private readonly totals = new Map<StreamClass, number>();
  private readonly byPrincipal = new Map<string, number>();
  private readonly byConnection = new Map<StreamClass, Map<Connection, number>>();

  constructor(private readonly limits: StreamLimitSettings) {}

  /** Takes a place for a new stream or throws ResourceExhausted naming the limit it would pass. */
  acquire(cls: StreamClass, principal: string, connection: Connection | undefined, what: string): Lease {
    const limit: StreamLimit = this.limits[cls];
    const key = `${cls} ${principal}`;
    let perConnection = this.byConnection.get(cls);
    if (!perConnection) this.byConnection.set(cls, (perConnection = new Map()));
    if ((this.totals.get(cls) ?? 0) >= limit.total) throw exhausted(`too many open ${what} streams on this server (limit ${limit.total}); retry later`);
    if ((this.byPrincipal.get(key) ?? 0) >= limit.perPrincipal) throw exhausted(`too many open ${what} streams of this caller (limit ${limit.perPrincipal})`);
    if (connection && (perConnection.get(connection) ?? 0) >= limit.perConnection) {
      throw exhausted(`too many open ${what} streams on this connection (limit ${limit.perConnection})`);
    }
    bump(this.totals, cls, 1);
    bump(this.byPrincipal, key, 1);
    if (connection) bump(perConnection, connection, 1);
    return new Lease(this, cls, key, connection);
  }

  release(lease: Lease): void {
    bump(this.totals, lease.cls, -1);
    bump(this.byPrincipal, lease.principal, -1);
    if (lease.connection) bump(this.byConnection.get(lease.cls)!, lease.connection, -1);
  }

  /** Open streams of a class (for tests and metrics). */
  open(cls: StreamClass): number {
    return this.totals.get(cls) ?? 0;
  }
}

/**
 * Refuses a long-lived stream over its class's limits with ResourceExhausted.
 * Runs after authentication: authenticated streams count per token, public
 * ones per remote address (anyone can make tokens-free callers).
 */
export function createStreamLimitInterceptor(limits: StreamLimits): Interceptor {
  return (next) => async (req) => {
    const cls = streamClassOf(req.method);
    if (!cls) return next(req);
    const connection = req.contextValues.get(kConnection);
    const principal = req.contextValues.get(kPrincipal);
    const who = cls === "public" || !principal ? `address ${addressOf(connection)}` : `token ${principal.tokenId}`;
    const lease = limits.acquire(cls, who, connection, `${req.method.parent.name}/${req.method.name}`);
    if (req.signal.aborted) {
      lease.release();
    } else {
      req.signal.addEventListener("abort", lease, { once: true });
    }
    try {
      return await next(req);
    } catch (err) {
      lease.release();
      throw err;
    }
  };
}
