import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { retryReads } from "../../client/retry.js";
import { PartitionService } from "../../gen/metal/admin/v1/partition_pb.js";

/** A partition service whose calls fail with `code` the first `failures` times; counts the calls that reached it. */
function flakyService(failures: number, code = Code.Unavailable) {
  const calls = { list: 0, create: 0 };
  const fail = (n: number) => {
    if (n <= failures) throw new ConnectError("injected", code);
  };
  const transport = createRouterTransport(
    (router) =>
      router.service(PartitionService, {
        list: () => (fail(++calls.list), { partitions: [] }),
        create: () => (fail(++calls.create), {}),
      }),
    { transport: { interceptors: [retryReads({ attempts: 3, policy: { initialMs: 1, maxMs: 2, jitter: 0 } })] } },
  );
  return { client: createClient(PartitionService, transport), calls };
}

describe("retryReads", () => {
  it("retries a read that met Unavailable until it works", async () => {
    const { client, calls } = flakyService(2);
    await expect(client.list({})).resolves.toBeDefined();
    expect(calls.list).toBe(3);
  });

  it("gives up after the configured attempts with the last error", async () => {
    const { client, calls } = flakyService(5, Code.DeadlineExceeded);
    await expect(client.list({})).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    expect(calls.list).toBe(3);
  });

  it("never retries a write, nor an error that is an answer", async () => {
    const write = flakyService(1);
    await expect(write.client.create({})).rejects.toMatchObject({ code: Code.Unavailable });
    expect(write.calls.create).toBe(1);
    const refused = flakyService(1, Code.InvalidArgument);
    await expect(refused.client.list({})).rejects.toMatchObject({ code: Code.InvalidArgument });
    expect(refused.calls.list).toBe(1);
  });
});
