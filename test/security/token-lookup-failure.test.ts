import { Code, type ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { PartitionService } from "../../gen/metal/api/v1/partition_pb.js";
import type { TokenAuthority } from "../../server/auth/token-authority.js";
import { createAuthInterceptor, refusalBeforeBody } from "../../server/interceptors/auth.js";
import { createObserveInterceptor } from "../../server/interceptors/observe.js";
import { createLogger } from "../../server/logger.js";
import { createMetrics } from "../../server/metrics.js";
import { expectCode } from "../helpers/expect.js";

/** What drizzle throws when the token row cannot be read: the query and its parameters (the token id) in the message. */
const TOKEN_ID = "01a24574-16e3-7cfb-9200-bdf55dd227a9";
const dbFailure = () => new Error(`Failed query: select "id", "subject" from "tokens" where "tokens"."id" = $1\nparams: ${TOKEN_ID}`);

const failingAuthority = { verify: () => Promise.reject(dbFailure()) } as unknown as TokenAuthority;

describe("a token that cannot be looked up (the database failed)", () => {
  it("is no refusal before the body: the early check leaves the call to the interceptors", async () => {
    expect(await refusalBeforeBody(failingAuthority, PartitionService.method.get, "Bearer x.y.z")).toBeUndefined();
  });

  it("reaches the caller as Internal naming the request id, never the query or the token id", async () => {
    const logged: unknown[] = [];
    const log = createLogger("error", { pretty: false });
    log.error = ((obj: unknown) => void logged.push(obj)) as typeof log.error;
    const projects = { tenantOf: async () => undefined, quotasOf: async () => undefined };
    const transport = createRouterTransport(
      (router) =>
        router.service(PartitionService, {
          get: () => ({}),
          list: () => ({}),
          capacity: () => ({}),
        }),
      { router: { interceptors: [createObserveInterceptor(log, createMetrics()), createAuthInterceptor({ authority: failingAuthority, projects })] } },
    );
    const client = createClient(PartitionService, transport);
    const err: ConnectError = await expectCode(client.get({ id: "p1" }, { headers: { authorization: "Bearer x.y.z" } }), Code.Internal, "internal error (request id ");
    expect(err.rawMessage).not.toContain(TOKEN_ID);
    expect(err.rawMessage).not.toContain("tokens");
    expect(logged).toHaveLength(1);
  });
});
