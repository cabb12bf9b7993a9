import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";

let server: http2.Http2Server;
let url: string;

beforeAll(async () => {
  server = http2.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

describe("client HTTP/2 sessions (connect-es issue 1768)", () => {
  it("carry an error listener of last resort once the client kit is loaded, also as connect-node imports node:http2", async () => {
    createTransport({ baseUrl: url });
    // The namespace import is what connect-node's session manager calls.
    const session = http2.connect(url);
    try {
      expect(session.listenerCount("error")).toBeGreaterThanOrEqual(1);
      // An error nobody else listens for ends the session, not the process.
      const closed = new Promise<void>((r) => session.once("close", () => r()));
      session.destroy(new Error("deferred GOAWAY error"));
      await closed;
      expect(session.destroyed).toBe(true);
    } finally {
      session.destroy();
    }
  });
});
