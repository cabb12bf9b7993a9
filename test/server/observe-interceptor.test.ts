import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { VersionService } from "../../gen/metal/api/v1/version_pb.js";
import { invalidArgument } from "../../server/errors.js";
import { createObserveInterceptor } from "../../server/interceptors/observe.js";
import { createLogger } from "../../server/logger.js";
import { createMetrics } from "../../server/metrics.js";
import { expectCode } from "../helpers/expect.js";

function clientThrowing(err: unknown) {
  const logged: unknown[] = [];
  const log = createLogger("error", { pretty: false });
  log.error = ((obj: unknown) => void logged.push(obj)) as typeof log.error;
  const transport = createRouterTransport(
    (router) =>
      router.service(VersionService, {
        get() {
          throw err;
        },
      }),
    { router: { interceptors: [createObserveInterceptor(log, createMetrics())] } },
  );
  return { client: createClient(VersionService, transport), logged };
}

describe("observe interceptor", () => {
  it("turns an unexpected exception into Internal naming the request id, never the cause", async () => {
    const { client, logged } = clientThrowing(new Error("connection string postgres://secret@db"));
    const err = await expectCode(client.get({}), Code.Internal, "internal error (request id ");
    expect(err.rawMessage).not.toContain("secret");
    expect(logged).toHaveLength(1);
    const requestId = /request id ([^)]+)\)/.exec(err.rawMessage)![1];
    expect(logged[0]).toMatchObject({ requestId, code: "Internal" });
  });

  it("passes errors with a meaningful code through unchanged", async () => {
    const { client, logged } = clientThrowing(invalidArgument("invalid request: id: is required"));
    await expectCode(client.get({}), Code.InvalidArgument, "id: is required");
    expect(logged).toHaveLength(0);
  });
});
