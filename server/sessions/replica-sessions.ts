import type { FanoutBus } from "../bus/fanout.js";
import type { DbHandle } from "../db/handle.js";
import { ConnectionRegistry } from "./connections.js";
import { RelayBroker } from "./console/relay-broker.js";
import { createSwitchConfigReader, type SwitchConfigReader } from "./switch/config-reader.js";
import { createSwitchSyncWriter, type SwitchSyncWriter } from "./switch/sync-writer.js";
import { DEFAULT_WAIT_TIMING, type WaitTiming } from "./wait/session.js";
import { WaitingRegistry } from "./wait/waiting.js";
import { createChangeNotifier } from "./watch/notify.js";

/**
 * What the daemon sessions of one replica share. Built once by the
 * composition root (app.ts) and handed to the handlers that hold sessions
 * and to the SSH console front end; nothing finds it through a module-level
 * lookup.
 */
export interface ReplicaSessions {
  /** Wakes sessions when something they serve changed, here or on another replica. */
  readonly bus: FanoutBus;
  /** The edge daemons whose streams this replica holds. */
  readonly connections: ConnectionRegistry;
  /** The machines whose Wait stream this replica holds; renews their leases together. */
  readonly waiting: WaitingRegistry;
  readonly waitTiming: WaitTiming;
  /** Joins console sessions (SSH front end) with metal-bmc's Relay streams. */
  readonly consoles: RelayBroker;
  /** Batched for all switch sessions: a change that reaches many switches is read, and their reports stored, in a few statements. */
  readonly switchConfigReader: SwitchConfigReader;
  readonly switchSyncWriter: SwitchSyncWriter;
  /** Ends every open session (their handlers see it at once); first step of a shutdown. */
  endAll(): void;
  /** Ends every session and stops the periodic lease renewal. */
  stop(): void;
}

export interface ReplicaSessionsDeps {
  db: DbHandle;
  /**
   * Connections of their own for the switch sessions' batched work, so that a
   * burst of API transactions does not hold up the change they made on its
   * way to the switches; `db` itself where there is only one connection.
   */
  streamLane: DbHandle;
  bus: FanoutBus;
  /** This replica's id in the replica table; its daemon sessions' rows carry it (written only when given). */
  replicaId?: string;
  /** Writing a daemon session's row failed (logged; the replica's next heartbeat writes it again). */
  onSessionRowError?: (err: unknown, what: string) => void;
  waitTiming?: WaitTiming;
  /** A periodic lease renewal or re-check failed (logged; the next one tries again). */
  onWaitingError?: (err: unknown) => void;
}

/** Builds the replica's shared session objects and starts the waiting leases' renewal. */
export function createReplicaSessions({ db, streamLane, bus, replicaId, onSessionRowError = () => {}, waitTiming = DEFAULT_WAIT_TIMING, onWaitingError }: ReplicaSessionsDeps): ReplicaSessions {
  const connections = replicaId === undefined ? new ConnectionRegistry() : new ConnectionRegistry(replicaId, { db, onError: onSessionRowError });
  const waiting = new WaitingRegistry(db, waitTiming, onWaitingError);
  waiting.start();
  // Allocations made elsewhere while the broker was away: one batched re-check finds them for every Wait stream here.
  const stopResync = bus.onResync(() => void waiting.recheckAll().catch((err: unknown) => onWaitingError?.(err)));
  return {
    bus,
    connections,
    waiting,
    waitTiming,
    consoles: new RelayBroker({ replica: replicaId }),
    switchConfigReader: createSwitchConfigReader(streamLane),
    // A sync report is a change Watch and the event feed read: wake their readers at once.
    switchSyncWriter: createSwitchSyncWriter(streamLane, db, createChangeNotifier(bus)),
    endAll: () => connections.closeAll(),
    stop() {
      stopResync();
      connections.closeAll();
      waiting.stop();
    },
  };
}
