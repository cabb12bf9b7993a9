import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { DbHandle } from "../db/handle.js";
import { sessionKey, daemonSessionRepository as sessionRows } from "../repositories/replica-repository.js";

/**
 * The edge daemons connected to THIS replica over their long-lived streams,
 * and their rows in the daemon_sessions table that every replica reads
 * (ConnectionService.List, the console's look-up of a partition's
 * metal-bmc). Another replica reaches a daemon by publishing a wake-up on the
 * fan-out bus; the daemon's stream on its own replica then reads the truth
 * from the database.
 */
export type DaemonKind = "switch" | "bmc";

export interface DaemonConnection {
  kind: DaemonKind;
  /** The switch id, or the metal-bmc's own name (unique only within its partition). */
  id: string;
  partition: string;
  replica: string;
  /** host:port of the replica that holds the stream, where known (rows read from the table). */
  replicaAddress?: string;
  connectedAt: Date;
  lastHeartbeat: Date;
}

export interface ConnectionHandle {
  readonly connection: Readonly<DaemonConnection>;
  /** Records a heartbeat (or any message) from the daemon; the table gets it at the replica's next heartbeat. */
  touch(now?: Date): void;
  /** Removes the connection; idempotent. */
  close(): void;
  /** Aborted when the connection is closed, replaced by a newer one of the same daemon, or the server shuts down. */
  readonly signal: AbortSignal;
}

/** Where the registry writes its rows; without it the registry is this replica's memory only (unit tests). */
export interface SessionTable {
  db: DbHandle;
  /** A write failed; the next heartbeat writes every live session's row again. */
  onError(err: unknown, what: string): void;
}

/** One name per process, so an operator can tell which replica holds a stream. */
export const REPLICA_ID = `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;

/** One daemon's identity; JSON, so no separator inside a name can make two daemons collide. */
const connectionKey = (kind: DaemonKind, partition: string, id: string): string => sessionKey({ kind, partition, daemonId: id });

interface Entry {
  connection: DaemonConnection;
  abort: AbortController;
  /** The row's first write; a close deletes the row only after it, so no row outlives its stream. */
  written: Promise<void>;
}

const held = (c: DaemonConnection) => ({ kind: c.kind, partition: c.partition, daemonId: c.id, connectedAt: c.connectedAt, lastSeen: c.lastHeartbeat });

export class ConnectionRegistry {
  private readonly live = new Map<string, Entry>();
  /** connected_at is the connection's identity in the table (with the replica): strictly increasing here. */
  private lastConnectedMs = 0;

  constructor(
    readonly replica: string = REPLICA_ID,
    private readonly table?: SessionTable,
  ) {}

  /**
   * Registers a daemon's stream. A daemon that reconnects while its old
   * stream is not yet torn down replaces it: the old one is aborted, so two
   * streams never both send it commands. A daemon is known by kind, partition
   * AND name: a metal-bmc's name is its host name by default, so same-named
   * daemons of two partitions are two daemons, and an infra token of one
   * partition cannot end another partition's stream by naming its daemon.
   *
   * The session's row is written at once, without holding up the stream: it
   * is in the table one statement later (normally before the session's
   * first answer reaches the daemon), and if that write fails the replica's
   * next heartbeat writes it.
   */
  register(kind: DaemonKind, id: string, partition: string, now = new Date()): ConnectionHandle {
    const key = connectionKey(kind, partition, id);
    this.live.get(key)?.abort.abort(new Error("replaced by a newer connection"));
    const abort = new AbortController();
    const connectedAt = now.getTime() > this.lastConnectedMs ? now : new Date(this.lastConnectedMs + 1);
    this.lastConnectedMs = connectedAt.getTime();
    const connection: DaemonConnection = { kind, id, partition, replica: this.replica, connectedAt, lastHeartbeat: connectedAt };
    const entry: Entry = { connection, abort, written: this.write([connection]) };
    this.live.set(key, entry);
    return {
      connection,
      signal: abort.signal,
      touch: (at = new Date()) => {
        connection.lastHeartbeat = at;
      },
      close: () => {
        if (this.live.get(key) === entry) {
          this.live.delete(key);
          void entry.written.then(() => this.release(connection));
        }
        abort.abort(new Error("connection closed"));
      },
    };
  }

  /** The streams this replica holds. */
  list(filter: { kind?: DaemonKind; partition?: string } = {}): DaemonConnection[] {
    return [...this.live.values()]
      .map((e) => e.connection)
      .filter((c) => (filter.kind === undefined || c.kind === filter.kind) && (filter.partition === undefined || c.partition === filter.partition))
      .sort((a, b) => (connectionKey(a.kind, a.partition, a.id) < connectionKey(b.kind, b.partition, b.id) ? -1 : 1));
  }

  /**
   * The sessions of every replica, from the table, in the order of `list`.
   * This replica's own sessions show the last message it heard; the others'
   * last_seen is as old as their replica's last heartbeat.
   */
  async listEverywhere(filter: { kind?: DaemonKind; partition?: string } = {}): Promise<DaemonConnection[]> {
    if (!this.table) return this.list(filter);
    const rows = await sessionRows.list(this.table.db, filter);
    return rows.map((r) => {
      const mine = r.replica === this.replica ? this.live.get(connectionKey(r.kind, r.partition, r.daemonId))?.connection : undefined;
      const lastHeartbeat = mine && mine.connectedAt.getTime() === r.connectedAt.getTime() && mine.lastHeartbeat > r.lastSeen ? mine.lastHeartbeat : r.lastSeen;
      return { kind: r.kind, id: r.daemonId, partition: r.partition, replica: r.replica, replicaAddress: r.replicaAddress, connectedAt: r.connectedAt, lastHeartbeat };
    });
  }

  /**
   * The replica's heartbeat: writes every live session's row in batches
   * (last_seen, or the whole row where it is missing: after a failed write,
   * or after this replica was reaped), and ends the streams whose daemon has
   * since connected to another replica (its row belongs to the newer
   * connection now), so that two replicas never both serve one daemon for
   * longer than a heartbeat.
   */
  async sync(): Promise<void> {
    if (!this.table) return;
    const entries = [...this.live.values()];
    if (entries.length === 0) return;
    const mine = await sessionRows.hold(
      this.table.db,
      this.replica,
      entries.map((e) => held(e.connection)),
    );
    for (const e of entries) {
      const c = e.connection;
      const key = connectionKey(c.kind, c.partition, c.id);
      const current = this.live.get(key) === e;
      // Closed while the statement ran: its release may have gone first, so delete the row again.
      if (!current) void this.release(c);
      else if (!mine.has(key)) {
        this.live.delete(key);
        e.abort.abort(new Error("replaced by a newer connection on another replica"));
      }
    }
  }

  /** Ends every stream (server shutdown); their rows go with the replica's row. */
  closeAll(): void {
    for (const e of this.live.values()) e.abort.abort(new Error("server shutting down"));
    this.live.clear();
  }

  private write(connections: DaemonConnection[]): Promise<void> {
    const table = this.table;
    if (!table) return Promise.resolve();
    return sessionRows.hold(table.db, this.replica, connections.map(held)).then(
      () => {},
      (err: unknown) => table.onError(err, "writing a daemon session's row"),
    );
  }

  private release(c: DaemonConnection): Promise<void> {
    const table = this.table;
    if (!table) return Promise.resolve();
    return sessionRows
      .release(table.db, this.replica, { kind: c.kind, partition: c.partition, daemonId: c.id, connectedAt: c.connectedAt })
      .catch((err: unknown) => table.onError(err, "deleting a daemon session's row"));
  }
}
