import { randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { Aedes } from "aedes";

/** An MQTT broker inside the lab's process, for its replicas' wake-ups when no MQTT_URL is given. */
export interface EmbeddedBroker {
  /** mqtt://user:password@host:port: what the replicas get as MQTT_URL. Holds the password: never print it. */
  readonly url: string;
  /** host:port, for people. */
  readonly address: string;
  close(): Promise<void>;
}

/**
 * A replica's CONNECT is a few hundred bytes. A client that sends more before
 * it has authenticated is not one of them; without this bound the MQTT parser
 * buffers a packet of up to 256 MiB for anyone who can reach the port.
 */
export const MAX_BYTES_BEFORE_AUTH = 16 * 1024;
/** A client has this long to send its CONNECT (aedes' default is 30 s); the replicas, on this host, send it at once. */
const CONNECT_TIMEOUT_MS = 10_000;
/** Sockets at once: one per replica (at most 16) while it reconnects too, with room to spare. */
const MAX_CONNECTIONS = 128;

/**
 * Starts aedes on `host`, port 0 (a free one), with a user and a random
 * password only the lab's replicas are given: another local user can
 * neither read the event feed nor wake the replicas with made-up hints.
 */
export async function startEmbeddedBroker(host = "127.0.0.1"): Promise<EmbeddedBroker> {
  const user = "metal-lab";
  const password = randomBytes(18).toString("base64url");
  const expected = Buffer.from(password);
  // The sockets whose client presented the lab's credentials: no longer held to MAX_BYTES_BEFORE_AUTH.
  const authenticated = new WeakSet<object>();
  const broker = await Aedes.createBroker({
    connectTimeout: CONNECT_TIMEOUT_MS,
    authenticate(client, username, given, done) {
      const ok = username === user && given !== undefined && given.length === expected.length && timingSafeEqual(given, expected);
      if (ok) {
        authenticated.add(client.conn);
        return done(null, true);
      }
      const err = Object.assign(new Error("bad user name or password"), { returnCode: 4 as const });
      done(err, false);
    },
  });
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    broker.handle(socket);
    // Added after aedes' "readable" listener, so it only counts what aedes reads (no flowing mode).
    let received = 0;
    const count = (chunk: Buffer) => {
      if (authenticated.has(socket)) return void socket.off("data", count);
      received += chunk.length;
      if (received > MAX_BYTES_BEFORE_AUTH) socket.destroy();
    };
    socket.on("data", count);
  });
  server.maxConnections = MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen({ host, port: 0 }, () => resolve()));
  const { port } = server.address() as { port: number };
  const address = `${host}:${port}`;
  return {
    url: `mqtt://${user}:${password}@${address}`,
    address,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await closed;
    },
  };
}
