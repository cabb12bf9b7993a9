import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import { connect, type IClientOptions, type MqttClient } from "mqtt";
import type { Logger } from "../logger.js";
import { type FanoutBus, localEmitter } from "./fanout.js";

/** The MQTT bus: the fan-out bus across replicas, plus the event feed's publishing. */
export interface MqttBus extends FanoutBus {
  /**
   * Publishes one event of the feed under `<prefix>/v1/events/<topic>` with
   * QoS 1 and resolves when the broker acknowledged it (PUBACK). Rejects,
   * never throws, when the broker is not connected or does not acknowledge in
   * time: the feed keeps the event and retries (so a consumer may see it twice).
   */
  publishFeed(topic: string, payload: string): Promise<void>;
}

export interface MqttBusOptions {
  /** mqtt://, mqtts://, ws:// or wss:// URL; credentials in it are used, never logged. */
  url: string;
  /** First topic level (METAL_MQTT_TOPIC_PREFIX). */
  prefix: string;
  /** This replica's id: wake-ups it published come back from the broker and are recognised by it. */
  replicaId: string;
  log?: Logger;
  /** How long createMqttBus waits for the first connection before it goes on without one (default 10 s). */
  firstConnectMs?: number;
  /** Pause between reconnect attempts (default 1 s). */
  reconnectMs?: number;
  /** Resync requests of other replicas run at most once per this interval (default 1 s). */
  resyncIntervalMs?: number;
}

/** A wake-up is a few ids; anything larger is not ours (and is refused before it is parsed). */
export const MAX_WAKE_PAYLOAD_BYTES = 16 * 1024;
/** Payload plus the envelope's origin and quoting. */
const MAX_WAKE_MESSAGE_BYTES = MAX_WAKE_PAYLOAD_BYTES * 2 + 512;
/** One event of the feed (proto JSON of one machine event, allocation or switch status). */
export const MAX_FEED_PAYLOAD_BYTES = 256 * 1024;
/** A feed publish without PUBACK for this long is reported as failed (the broker may still deliver it later). */
const FEED_ACK_TIMEOUT_MS = 10_000;
/** close() lets acknowledgements of feed events under way arrive for at most this long. */
const CLOSE_GRACE_MS = 2_000;
/** Ignored broker messages are logged at most this often (a hostile publisher must not flood the log). */
const IGNORED_LOG_INTERVAL_MS = 60_000;
/** A half-open TCP connection is noticed after 1.5 keepalives without an answer. */
const KEEPALIVE_S = 15;
/** The bus topic a replica publishes after it (re)connected: "I may have lost wake-ups I sent; re-read". */
const RESYNC_TOPIC = "bus/resync";
/** Resync requests of other replicas are coalesced to one run per this interval. */
const RESYNC_INTERVAL_MS = 1_000;

/** Where a wake-up's origin is carried: MQTT 3.1.1 has no user properties, so it is part of the payload. */
interface WakeEnvelope {
  /** The replica that published it. */
  o: string;
  /** The bus payload, when there is one. */
  p?: string;
}

/** scheme://host:port, for log lines and errors: never the user name or password. */
export function brokerName(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return "the configured MQTT broker";
  }
}

/**
 * The broker URL without its user and password, and those decoded. The mqtt
 * package splits a URL's user and password at the last ":", so a password
 * with ":" in it (percent-encoded or not) reached the broker cut; given as
 * options they arrive whole.
 */
export function splitBrokerCredentials(url: string): { url: string; username?: string; password?: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { url };
  }
  if (u.username === "" && u.password === "") return { url };
  const username = decodeURIComponent(u.username);
  const password = u.password === "" ? undefined : decodeURIComponent(u.password);
  u.username = "";
  u.password = "";
  return { url: u.toString(), username, password };
}

/** A topic of ours never contains MQTT wildcards or NUL, and is not empty. */
const validTopic = (topic: string) => topic.length > 0 && topic.length <= 1024 && !/[+#\u0000]/.test(topic);

/**
 * Connects to the broker and returns the bus. One wildcard subscription
 * (`<prefix>/v1/wake/#`, QoS 0) serves every local subscriber, so thousands of
 * Wait streams cost no broker subscriptions. The first connection is waited
 * for up to `firstConnectMs`; a broker that refuses the connection (bad
 * credentials, not authorised) fails the start with its host named, while an
 * unreachable broker only delays wake-ups: the bus goes on disconnected with
 * a warning, keeps dialling, and resyncs its subscribers once connected.
 */
export async function createMqttBus(opts: MqttBusOptions): Promise<MqttBus> {
  const { prefix, replicaId, log } = opts;
  const broker = brokerName(opts.url);
  const wakeRoot = `${prefix}/v1/wake/`;
  const emitter = localEmitter();
  const resyncListeners = new Set<() => void>();
  const pendingFeeds = new Set<{ reject: (err: Error) => void; done: Promise<unknown> }>();
  let connected = false;
  let closed = false;
  // Until createMqttBus returns nobody subscribed, so the first connection has nothing to resync.
  let handedOut = false;
  let ignored = 0;
  let ignoredLoggedAt = 0;
  let resyncTimer: NodeJS.Timeout | undefined;
  let lastResyncAt = Number.NEGATIVE_INFINITY;

  const credentials = splitBrokerCredentials(opts.url);
  const clientOptions: IClientOptions = {
    ...(credentials.username !== undefined ? { username: credentials.username } : {}),
    ...(credentials.password !== undefined ? { password: credentials.password } : {}),
    protocolVersion: 4,
    clean: true,
    // Several processes may run under one replica id by mistake; a random suffix keeps them from kicking each other off.
    clientId: `${prefix}-${randomBytes(4).toString("hex")}-${replicaId}`.slice(0, 128),
    keepalive: KEEPALIVE_S,
    connectTimeout: 10_000,
    reconnectPeriod: opts.reconnectMs ?? 1_000,
    // Subscribed again by hand on every connect, so that resync runs only after the subscription stands.
    resubscribe: false,
    // Keep dialling after a refusal too (credentials fixed on the broker); the first one fails the start instead.
    reconnectOnConnackError: true,
    // Wake-ups are not queued while offline: the reconnect resync covers them, and a queue would grow without bound.
    queueQoSZero: false,
  };
  const client: MqttClient = connect(credentials.url, clientOptions);

  function ignore(why: string): void {
    ignored++;
    const now = Date.now();
    if (now - ignoredLoggedAt < IGNORED_LOG_INTERVAL_MS) return;
    ignoredLoggedAt = now;
    log?.warn({ broker, ignored, why }, "ignored malformed MQTT wake-up messages");
    ignored = 0;
  }

  function runResync(): void {
    lastResyncAt = Date.now();
    for (const listener of [...resyncListeners]) {
      try {
        listener();
      } catch (err) {
        log?.error({ err }, "a bus resync listener failed");
      }
    }
  }

  /** Another replica asked for a resync: run it now, or once at the end of the current interval. */
  function resyncSoon(): void {
    if (resyncTimer) return;
    const wait = lastResyncAt + (opts.resyncIntervalMs ?? RESYNC_INTERVAL_MS) - Date.now();
    if (wait <= 0) return runResync();
    resyncTimer = setTimeout(() => {
      resyncTimer = undefined;
      runResync();
    }, wait);
    resyncTimer.unref();
  }

  function sendWake(topic: string, payload: string | undefined): void {
    if (!connected) return;
    const envelope: WakeEnvelope = payload === undefined ? { o: replicaId } : { o: replicaId, p: payload };
    client.publish(wakeRoot + topic, JSON.stringify(envelope), { qos: 0 }, (err) => {
      if (err && !closed) log?.debug({ err, topic }, "a wake-up did not reach the broker");
    });
  }

  client.on("message", (mqttTopic, message) => {
    if (!mqttTopic.startsWith(wakeRoot)) return ignore("topic outside the wake-up tree");
    const topic = mqttTopic.slice(wakeRoot.length);
    if (message.length > MAX_WAKE_MESSAGE_BYTES) return ignore("too large");
    let envelope: unknown;
    try {
      envelope = JSON.parse(message.toString("utf8"));
    } catch {
      return ignore("not JSON");
    }
    const e = envelope as Partial<WakeEnvelope> | null;
    if (typeof e !== "object" || e === null || typeof e.o !== "string" || (e.p !== undefined && typeof e.p !== "string")) return ignore("not a wake-up envelope");
    if (e.o === replicaId) return; // our own publish, delivered locally already
    if (topic === RESYNC_TOPIC) return resyncSoon();
    if (e.p !== undefined && e.p.length > MAX_WAKE_PAYLOAD_BYTES) return ignore("payload too large");
    // No subscriber, no work (and an emitter must never see an unhandled "error" event from outside).
    if (emitter.listenerCount(topic) === 0) return;
    try {
      emitter.emit(topic, e.p);
    } catch (err) {
      log?.error({ err, topic }, "a bus subscriber failed on a wake-up from another replica");
    }
  });

  let firstConnected: () => void = () => {};
  let firstRefused: (err: Error) => void = () => {};
  const first = new Promise<void>((resolve, reject) => {
    firstConnected = resolve;
    firstRefused = reject;
  });
  // A refusal after the start went on without the broker is only logged (below), never an unhandled rejection.
  first.catch(() => {});

  client.on("connect", () => {
    // Wake-ups are small writes that must leave at once: Nagle's algorithm held them for a delayed ACK (40 ms) under load.
    (client.stream as Partial<Socket>).setNoDelay?.(true);
    client.subscribe(`${wakeRoot}#`, { qos: 0 }, (err, granted) => {
      if (closed) return;
      // An error while the connection stands, or a SUBACK failure code, is the broker's refusal (an ACL, say);
      // an error because the connection dropped before the SUBACK is retried with the next connection.
      const refused = granted?.some((g) => g.qos === 128) || (err !== null && err !== undefined && client.connected);
      if (refused) log?.error({ broker, err }, "the MQTT broker refused the wake-up subscription; wake-ups from other replicas wait for the periodic re-check");
      if (err || refused) return;
      connected = true;
      firstConnected();
      if (!handedOut) return;
      log?.info({ broker }, "MQTT broker connected again; re-reading what was woken meanwhile");
      runResync();
      // What this replica published while it was away was lost too: the others re-read as well.
      sendWake(RESYNC_TOPIC, undefined);
    });
  });

  client.on("close", () => {
    if (connected && !closed) log?.warn({ broker }, "MQTT broker connection lost; wake-ups from other replicas wait for the periodic re-check until it is back");
    connected = false;
  });

  client.on("error", (err: Error & { code?: unknown }) => {
    // A number is the broker's CONNACK refusal (MQTT return/reason code); a string is the socket's error.
    if (typeof err.code === "number") firstRefused(new Error(`the MQTT broker ${broker} refused the connection: ${err.message}`));
    if (handedOut && !closed) log?.warn({ broker, err }, "MQTT broker connection failed; retrying");
  });

  const firstConnectMs = opts.firstConnectMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  const bounded = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), firstConnectMs);
  });
  try {
    const outcome = await Promise.race([first, bounded]);
    if (outcome === "timeout") {
      log?.warn({ broker, waitedMs: firstConnectMs }, "MQTT broker not reachable; starting without it (wake-ups from other replicas wait for the periodic re-check) and retrying");
    }
  } catch (err) {
    closed = true;
    await client.endAsync(true).catch(() => {});
    throw err;
  } finally {
    clearTimeout(timer);
  }
  handedOut = true;

  async function endClient(): Promise<void> {
    if (pendingFeeds.size > 0) {
      await Promise.race([Promise.allSettled([...pendingFeeds].map((f) => f.done)), new Promise((r) => setTimeout(r, CLOSE_GRACE_MS).unref())]);
    }
    for (const f of pendingFeeds) f.reject(new Error("the MQTT bus was closed"));
    await client.endAsync(!connected || pendingFeeds.size > 0).catch(() => {});
  }

  return {
    publish(topic, payload) {
      // Local subscribers first and synchronously, exactly like the in-process bus.
      emitter.emit(topic, payload);
      if (!validTopic(topic) || topic === RESYNC_TOPIC) {
        log?.error({ topic }, "a bus topic with MQTT wildcards or a reserved name was published; other replicas are not woken");
        return;
      }
      if (payload !== undefined && payload.length > MAX_WAKE_PAYLOAD_BYTES) {
        log?.error({ topic, bytes: payload.length }, "a bus payload over the bound was published; other replicas are not woken");
        return;
      }
      if (!closed) sendWake(topic, payload);
    },

    subscribe(topic, handler) {
      emitter.on(topic, handler);
      return () => emitter.off(topic, handler);
    },

    onResync(listener) {
      resyncListeners.add(listener);
      return () => resyncListeners.delete(listener);
    },

    get connected() {
      return connected;
    },

    publishFeed(topic, payload) {
      if (closed) return Promise.reject(new Error("the MQTT bus was closed"));
      if (!validTopic(topic)) return Promise.reject(new Error(`"${topic.slice(0, 64)}" is not a feed topic (empty, too long, or with MQTT wildcards)`));
      if (Buffer.byteLength(payload) > MAX_FEED_PAYLOAD_BYTES) return Promise.reject(new Error(`a feed event must be at most ${MAX_FEED_PAYLOAD_BYTES} bytes`));
      if (!connected) return Promise.reject(new Error(`the MQTT broker ${broker} is not connected; the event was not published`));
      let settle: { resolve: () => void; reject: (err: Error) => void } = { resolve: () => {}, reject: () => {} };
      const done = new Promise<void>((resolve, reject) => {
        settle = { resolve, reject };
      });
      const entry = { reject: (err: Error) => settle.reject(err), done: done.catch(() => {}) };
      pendingFeeds.add(entry);
      const timeout = setTimeout(() => settle.reject(new Error(`the MQTT broker ${broker} did not acknowledge the event within ${FEED_ACK_TIMEOUT_MS} ms`)), FEED_ACK_TIMEOUT_MS);
      timeout.unref();
      client.publish(`${prefix}/v1/events/${topic}`, payload, { qos: 1 }, (err) => {
        if (err) settle.reject(new Error(`publishing to the MQTT broker ${broker} failed: ${err.message}`));
        else settle.resolve();
      });
      return done.finally(() => {
        clearTimeout(timeout);
        pendingFeeds.delete(entry);
      });
    },

    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(resyncTimer);
      resyncListeners.clear();
      await endClient();
      connected = false;
    },
  };
}
