import type { DbHandle } from "../db/handle.js";
import type { Logger } from "../logger.js";
import { replicaRepository as replicas } from "../repositories/replica-repository.js";

/** What the heartbeat stamps beside the replica's own row: the rows of the daemon sessions it holds (ConnectionRegistry). */
export interface HeldSessions {
  sync(): Promise<void>;
}

export interface ReplicaOptions {
  db: DbHandle;
  id: string;
  /** host:port where the other replicas reach this one. */
  address: string;
  version: string;
  heartbeatMs: number;
  /** A replica whose heartbeat is older than this is reaped, with its sessions' rows. */
  timeoutMs: number;
  log: Logger;
}

export interface Replica {
  readonly id: string;
  readonly address: string;
  /** The sessions whose rows each heartbeat stamps (set once the registry exists; it needs this replica's row first). */
  track(sessions: HeldSessions): void;
  /** Writes the address the others dial (when the listener's port was chosen at listen time, e.g. port 0). */
  setAddress(address: string): Promise<void>;
  /** Runs one heartbeat now, after any running one; what the timer does every heartbeatMs. */
  beat(): Promise<void>;
  /** Stops the heartbeat and deletes this replica's row, and with it its sessions' rows. Call before the database closes. */
  stop(): Promise<void>;
}

/**
 * Registers this process in the replica table and keeps its row alive: every
 * heartbeatMs it stamps its heartbeat, then its daemon sessions' last_seen
 * (one batched statement), then reaps the replicas whose heartbeat is older
 * than timeoutMs. Every replica reaps: the statement is cheap and skips rows
 * another reaper holds, so no lock or leader is needed. A replica that finds
 * its own row gone (it was paused for longer than the timeout and another
 * reaped it) inserts it again; its sessions' rows follow in the same beat.
 */
export async function startReplica(opts: ReplicaOptions): Promise<Replica> {
  const { db, id, address, version, heartbeatMs, timeoutMs, log } = opts;
  const identity = { id, address, version, startedAt: new Date() };
  await replicas.register(db, identity);
  // Rows a crashed predecessor left behind go now, not one heartbeat later.
  await reap();

  let sessions: HeldSessions | undefined;
  /** The last heartbeat queued; they run one after another. */
  let running: Promise<void> = Promise.resolve();
  let busy = 0;
  let stopped = false;

  async function reap(): Promise<void> {
    const dead = await replicas.reap(db, timeoutMs, id);
    if (dead.length > 0) log.warn({ replicas: dead }, "reaped replicas whose heartbeat stopped, with their daemon sessions");
  }

  async function tick(): Promise<void> {
    if (!(await replicas.heartbeat(db, id))) {
      if (stopped) return;
      log.warn({ replica: id }, "this replica's row was reaped (paused longer than the replica timeout): registering again");
      await replicas.register(db, identity);
    }
    await sessions?.sync();
    await reap();
  }

  const beat = (): Promise<void> => {
    busy++;
    running = running
      .then(tick)
      .catch((err: unknown) => log.error({ err }, "replica heartbeat failed"))
      .finally(() => {
        busy--;
      });
    return running;
  };

  // A slow database does not pile up heartbeats: the timer skips while one runs.
  const timer = setInterval(() => {
    if (!stopped && busy === 0) void beat();
  }, heartbeatMs);
  timer.unref();

  return {
    id,
    get address() {
      return identity.address;
    },
    async setAddress(to) {
      identity.address = to;
      await replicas.register(db, identity);
    },
    track(s) {
      sessions = s;
    },
    beat,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await running;
      await replicas.remove(db, id).catch((err: unknown) => log.error({ err }, "deleting this replica's row failed"));
    },
  };
}
