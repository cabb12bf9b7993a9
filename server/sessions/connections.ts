import { randomBytes } from "node:crypto";
import { hostname } from "node:os";

/**
 * The edge daemons connected to THIS replica over their long-lived streams.
 * Only this replica's view: another replica reaches a daemon by publishing a
 * wake-up on the fan-out bus, and the daemon's stream on its own replica
 * then reads the truth from the database.
 */
export type DaemonKind = "switch" | "bmc";

export interface DaemonConnection {
  kind: DaemonKind;
  /** The switch id, or the metal-bmc's own name (unique only within its partition). */
  id: string;
  partition: string;
  replica: string;
  connectedAt: Date;
  lastHeartbeat: Date;
}

export interface ConnectionHandle {
  readonly connection: Readonly<DaemonConnection>;
  /** Records a heartbeat (or any message) from the daemon. */
  touch(now?: Date): void;
  /** Removes the connection; idempotent. */
  close(): void;
  /** Aborted when the connection is closed, replaced by a newer one of the same daemon, or the server shuts down. */
  readonly signal: AbortSignal;
}

/** One name per process, so an operator can tell which replica holds a stream. */
export const REPLICA_ID = `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;

/** One daemon's identity; JSON, so no separator inside a name can make two daemons collide. */
const connectionKey = (kind: DaemonKind, partition: string, id: string): string => JSON.stringify([kind, partition, id]);

export class ConnectionRegistry {
  private readonly live = new Map<string, { connection: DaemonConnection; abort: AbortController }>();

  constructor(private readonly replica: string = REPLICA_ID) {}

  /**
   * Registers a daemon's stream. A daemon that reconnects while its old
   * stream is not yet torn down replaces it: the old one is aborted, so two
   * streams never both send it commands. A daemon is known by kind, partition
   * AND name: a metal-bmc's name is its host name by default, so same-named
   * daemons of two partitions are two daemons, and an infra token of one
   * partition cannot end another partition's stream by naming its daemon.
   */
  register(kind: DaemonKind, id: string, partition: string, now = new Date()): ConnectionHandle {
    const key = connectionKey(kind, partition, id);
    this.live.get(key)?.abort.abort(new Error("replaced by a newer connection"));
    const abort = new AbortController();
    const connection: DaemonConnection = { kind, id, partition, replica: this.replica, connectedAt: now, lastHeartbeat: now };
    const entry = { connection, abort };
    this.live.set(key, entry);
    return {
      connection,
      signal: abort.signal,
      touch: (at = new Date()) => {
        connection.lastHeartbeat = at;
      },
      close: () => {
        if (this.live.get(key) === entry) this.live.delete(key);
        abort.abort(new Error("connection closed"));
      },
    };
  }

  list(filter: { kind?: DaemonKind; partition?: string } = {}): DaemonConnection[] {
    return [...this.live.values()]
      .map((e) => e.connection)
      .filter((c) => (filter.kind === undefined || c.kind === filter.kind) && (filter.partition === undefined || c.partition === filter.partition))
      .sort((a, b) => (connectionKey(a.kind, a.partition, a.id) < connectionKey(b.kind, b.partition, b.id) ? -1 : 1));
  }

  /** Ends every stream (server shutdown). */
  closeAll(): void {
    for (const e of this.live.values()) e.abort.abort(new Error("server shutting down"));
    this.live.clear();
  }
}
