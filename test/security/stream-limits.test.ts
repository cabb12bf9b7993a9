import { type Client, Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { beforeAll, describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { eventually } from "../helpers/eventually.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import type { TestServer } from "../helpers/test-server.js";
import { type ConfiguredServer, startConfiguredServer } from "./configured-server.js";

/**
 * Issue 12, item 6: long-lived streams are limited per connection, per
 * principal (public ones: per remote address) and in total, and refused with
 * ResourceExhausted over a limit. Today's main took any number of health
 * Watches without a token.
 */
let server: ConfiguredServer;
let fixture: PartitionFixture;

beforeAll(async () => {
  server = await startConfiguredServer({
    // per connection / per principal / in total
    METAL_PUBLIC_STREAM_LIMITS: "2/3/4",
    METAL_WAIT_STREAM_LIMITS: "100/2/100",
  });
  fixture = await setUpPartition(server as unknown as TestServer);
});

/** A health client on a connection of its own, from the given local address (127.0.0.x all reach the server). */
const healthFrom = (localAddress = "127.0.0.1"): Client<typeof Health> => createClient(Health, createGrpcTransport({ baseUrl: server.url, nodeOptions: { localAddress } as never }));

/** Opens a Watch and resolves once the server sent its first status (the stream is open), or rejects with its refusal. */
async function openWatch(client: Client<typeof Health>, held: AbortController[]): Promise<void> {
  const abort = new AbortController();
  held.push(abort);
  const it = client.watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator]();
  await it.next();
  // Keep reading in the background so the stream stays served until aborted.
  void (async () => {
    try {
      while (!(await it.next()).done);
    } catch {
      // aborted at the end
    }
  })();
}

describe("public streams (health Watch, no token)", () => {
  it("are limited per connection, per remote address and in total, and the places come back when streams end", async () => {
    const held: AbortController[] = [];
    try {
      const first = healthFrom();
      await openWatch(first, held);
      await openWatch(first, held);
      await expectCode(openWatch(first, held), Code.ResourceExhausted, "on this connection (limit 2)");

      const second = healthFrom();
      await openWatch(second, held);
      await expectCode(openWatch(second, held), Code.ResourceExhausted, "of this caller (limit 3)");

      await openWatch(healthFrom("127.0.0.2"), held);
      await expectCode(openWatch(healthFrom("127.0.0.3"), held), Code.ResourceExhausted, "on this server (limit 4)");
      expect(server.app.streamLimits.open("public")).toBe(4);
      // What an operator sees beside the limits.
      expect(await (await fetch(`${server.url}/metrics`)).text()).toContain('metal_open_streams{class="public"} 4');
    } finally {
      for (const a of held) a.abort();
    }
    await eventually("the ended streams to give their places back", () => server.app.streamLimits.open("public") === 0);
    const again: AbortController[] = [];
    await openWatch(healthFrom(), again);
    for (const a of again) a.abort();
  });

  it("a unary health check is not a stream and is never limited", async () => {
    const held: AbortController[] = [];
    try {
      const client = healthFrom();
      await openWatch(client, held);
      await openWatch(client, held);
      for (let i = 0; i < 5; i++) expect((await client.check({ service: "" })).status).toBeDefined();
    } finally {
      for (const a of held) a.abort();
    }
    await eventually("the ended streams to give their places back", () => server.app.streamLimits.open("public") === 0);
  });
});

describe("Wait streams", () => {
  it("count per infra token: a third Wait of the same token is refused until one ends", async () => {
    const a = await fixture.bootMachine("r1");
    const b = await fixture.bootMachine("r2");
    await eventually("two Wait streams to be open", () => server.app.streamLimits.open("wait") === 2);
    const boot = server.grpcClient(BootService, fixture.infraToken);
    await expectCode(
      (async () => {
        for await (const _ of boot.wait({ partition: "p1", machineId: a.id }));
      })(),
      Code.ResourceExhausted,
      "BootService/Wait streams of this caller (limit 2)",
    );
    a.abort.abort();
    await eventually("the ended Wait to give its place back", () => server.app.streamLimits.open("wait") === 1);
    b.abort.abort();
    await eventually("every Wait to give its place back", () => server.app.streamLimits.open("wait") === 0);
  });
});
