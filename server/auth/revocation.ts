import { randomUUID } from "node:crypto";
import { type FanoutBus, tokensRevokedTopic } from "../bus/fanout.js";
import type { Logger } from "../logger.js";

/**
 * Carries token revocations to every replica's verification cache over the
 * bus, and lets the revoking call wait until the other live replicas have
 * dropped the tokens: a token revoked on A is refused on B as soon as the
 * revoke returns. Without an answer in time (broker down, a replica hung) the
 * revoke returns anyway and the cache bound (5 s) is the fallback.
 */
export interface RevocationFanout {
  /** Tells the other replicas to drop these tokens; resolves when the live ones confirmed, or after the bound. Never rejects. */
  announce(tokenIds: readonly string[]): Promise<void>;
  /** Calls `drop` with the ids another replica revoked. */
  onRevoked(drop: (tokenIds: readonly string[]) => void): () => void;
  /** Stops answering and waiting. */
  close(): void;
}

export interface RevocationFanoutOptions {
  bus: FanoutBus;
  /** This replica's id in the replicas table; acknowledgements are addressed to it. */
  replicaId: string;
  /** The OTHER replicas that are alive now (their heartbeat is fresh); without it nothing waits (one replica). */
  liveReplicas?: () => Promise<readonly string[]>;
  /** How long a revoke waits for the acknowledgements (default 2 s). */
  ackTimeoutMs?: number;
  log?: Logger;
}

/** The revocation message: who revoked, which announcement, which tokens. */
interface Revoked {
  o: string;
  n: string;
  ids: string[];
}

/** The acknowledgement: which replica dropped the tokens of which announcement. */
interface Ack {
  r: string;
  n: string;
}

/** Ids per message: a cascade may revoke many, a wake-up stays far under the bus's payload bound. */
const IDS_PER_MESSAGE = 200;
const DEFAULT_ACK_TIMEOUT_MS = 2_000;
const ID = /^[A-Za-z0-9-]{1,64}$/;
/** A replica id (configured, or host-pid-random with any host name); it becomes a topic level, so no separator or wildcard gets in. */
const REPLICA = /^[^/+#\u0000]{1,256}$/;

export const tokensRevokedAckTopic = (origin: string) => `tokens/revoked-ack/${origin}`;

function parse<T>(payload: string | undefined, valid: (v: Partial<T>) => boolean): T | undefined {
  if (payload === undefined) return undefined;
  try {
    const v = JSON.parse(payload) as Partial<T> | null;
    return typeof v === "object" && v !== null && valid(v) ? (v as T) : undefined;
  } catch {
    return undefined;
  }
}

const validRevoked = (v: Partial<Revoked>) =>
  typeof v.o === "string" &&
  REPLICA.test(v.o) &&
  typeof v.n === "string" &&
  v.n.length <= 64 &&
  Array.isArray(v.ids) &&
  v.ids.length <= IDS_PER_MESSAGE &&
  v.ids.every((id) => typeof id === "string" && ID.test(id));

const validAck = (v: Partial<Ack>) => typeof v.r === "string" && v.r.length <= 128 && typeof v.n === "string" && v.n.length <= 64;

export function createRevocationFanout(opts: RevocationFanoutOptions): RevocationFanout {
  const { bus, replicaId, log } = opts;
  const ackTimeoutMs = opts.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
  const droppers = new Set<(ids: readonly string[]) => void>();
  /** Per announcement under way: the replicas that confirmed it, and a nudge for its waiter. */
  const waiting = new Map<string, { acked: Set<string>; nudge: () => void }>();

  // A forged message costs a cache drop (a re-read) and an acknowledgement; a forged acknowledgement
  // only shortens a wait, after which the cache bound still holds. The database stays the truth.
  const offRevoked = bus.subscribe(tokensRevokedTopic, (payload) => {
    const m = parse<Revoked>(payload, validRevoked);
    if (!m || m.o === replicaId) return;
    for (const drop of droppers) drop(m.ids);
    bus.publish(tokensRevokedAckTopic(m.o), JSON.stringify({ r: replicaId, n: m.n } satisfies Ack));
  });
  const offAck = bus.subscribe(tokensRevokedAckTopic(replicaId), (payload) => {
    const a = parse<Ack>(payload, validAck);
    const w = a && waiting.get(a.n);
    if (!w) return;
    w.acked.add(a.r);
    w.nudge();
  });

  async function announceChunk(ids: string[], live: Promise<readonly string[] | undefined>, deadline: number): Promise<void> {
    const nonce = randomUUID();
    const state = { acked: new Set<string>(), nudge: () => {} };
    // Registered before publishing: with the in-process bus or a fast broker the answers may come at once.
    waiting.set(nonce, state);
    try {
      const connected = bus.connected;
      bus.publish(tokensRevokedTopic, JSON.stringify({ o: replicaId, n: nonce, ids } satisfies Revoked));
      const others = await live;
      // Disconnected, no answer can come: the others see the revocation within the cache bound.
      if (!connected || !others || others.length === 0) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(
          () => {
            const missing = others.filter((r) => !state.acked.has(r));
            log?.warn({ missing }, "replicas did not confirm a token revocation in time; they refuse the token within the cache bound (5 s)");
            resolve();
          },
          Math.max(0, deadline - Date.now()),
        );
        state.nudge = () => {
          if (others.every((r) => state.acked.has(r))) {
            clearTimeout(timer);
            resolve();
          }
        };
        state.nudge();
      });
    } finally {
      waiting.delete(nonce);
    }
  }

  return {
    async announce(tokenIds) {
      if (tokenIds.length === 0) return;
      const deadline = Date.now() + ackTimeoutMs;
      const live = (opts.liveReplicas?.() ?? Promise.resolve([])).catch((err: unknown) => {
        log?.warn({ err }, "reading the live replicas failed; a token revocation reaches the others within the cache bound (5 s)");
        return undefined;
      });
      const chunks: Promise<void>[] = [];
      for (let i = 0; i < tokenIds.length; i += IDS_PER_MESSAGE) chunks.push(announceChunk(tokenIds.slice(i, i + IDS_PER_MESSAGE), live, deadline));
      await Promise.all(chunks).catch((err: unknown) => log?.error({ err }, "announcing a token revocation failed; the others refuse the token within the cache bound (5 s)"));
    },

    onRevoked(drop) {
      droppers.add(drop);
      return () => droppers.delete(drop);
    },

    close() {
      offRevoked();
      offAck();
      droppers.clear();
    },
  };
}
