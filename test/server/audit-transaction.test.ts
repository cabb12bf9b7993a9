import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type Interceptor } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { IPService, IPServiceCreateRequestSchema } from "../../gen/metal/api/v1/ip_pb.js";
import { kPrincipal, kRequestId } from "../../server/auth/context.js";
import { inTransaction } from "../../server/db/database.js";
import type { DbHandle } from "../../server/db/handle.js";
import { noteCreated } from "../../server/db/transaction-hook.js";
import { noRoles } from "../../server/domain/roles.js";
import { createAuditInterceptor } from "../../server/interceptors/audit.js";
import { createLogger } from "../../server/logger.js";
import { outcomeOf } from "../../server/usecases/audit/entries.js";
import { redactRequest } from "../../server/usecases/audit/redact.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

let db: DbHandle;
let intercept: ReturnType<Interceptor>;
let seq = 0;

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
  intercept = createAuditInterceptor({ db, log: createLogger("silent") })(async (req) => (await handler(req)) as never);
});

/** The handler behind the interceptor, set per test. */
let handler: (req: unknown) => Promise<unknown> = async () => ({});

/** One audited call (IPService.Create) by "eve"; returns its request id. */
async function call(body: (requestId: string) => Promise<unknown>): Promise<{ requestId: string; error?: ConnectError }> {
  const requestId = `tx-test-${++seq}`;
  const contextValues = createContextValues();
  contextValues.set(kPrincipal, { tokenId: "tok-1", subject: "eve", expiresAt: new Date(Date.now() + 60_000), roles: noRoles() });
  contextValues.set(kRequestId, requestId);
  handler = async () => {
    await body(requestId);
    return { stream: false, message: {}, header: new Headers(), trailer: new Headers() };
  };
  const req = { method: IPService.method.create, stream: false, message: create(IPServiceCreateRequestSchema, { project: "pa", network: "n1" }), contextValues, header: new Headers() };
  try {
    await intercept(req as never);
    return { requestId };
  } catch (err) {
    return { requestId, error: ConnectError.from(err) };
  }
}

/** A change the test can look for afterwards: a partition row named after the call. */
const change = (tx: DbHandle, id: string) => tx.execute(sql`insert into partitions (id) values (${id})`);
const changed = async (id: string) => ((await db.execute(sql`select count(*)::int as n from partitions where id = ${id}`)) as unknown as { rows: { n: number }[] }).rows[0]!.n === 1;
const entries = async (requestId: string) =>
  ((await db.execute(sql`select outcome, error_message, xmin::text as tx from audit_entries where request_id = ${requestId}`)) as unknown as { rows: { outcome: string; error_message: string; tx: string }[] })
    .rows;
const targetsOf = async (requestId: string) =>
  ((await db.execute(sql`select target_ids from audit_entries where request_id = ${requestId}`)) as unknown as { rows: { target_ids: string[] }[] }).rows[0]?.target_ids;
const txOf = async (id: string) => ((await db.execute(sql`select xmin::text as tx from partitions where id = ${id}`)) as unknown as { rows: { tx: string }[] }).rows[0]?.tx;

describe("the audit entry and the transaction of the change", () => {
  it("commits with the change, in the same transaction", async () => {
    const { requestId, error } = await call((id) => inTransaction(db, (tx) => change(tx, id)));
    expect(error).toBeUndefined();
    const rows = await entries(requestId);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.outcome).toBe("ok");
    // Written by the very transaction that made the change.
    expect(rows[0]!.tx).toBe(await txOf(requestId));
  });

  it("rolls back with the change: the call's entry then records the failure, once", async () => {
    const { requestId, error } = await call((id) =>
      inTransaction(db, async (tx) => {
        await change(tx, id);
        await change(tx, id); // a unique violation after the change
      }),
    );
    expect(error).toBeDefined();
    expect(await changed(requestId)).toBe(false);
    const rows = await entries(requestId);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.outcome).toBe(outcomeOf(error!.code));
    expect(rows[0]!.outcome).not.toBe("ok");
  });

  it("a call that fails after its change committed: one entry, with the failure", async () => {
    const { requestId, error } = await call(async (id) => {
      await inTransaction(db, (tx) => change(tx, id));
      throw new ConnectError("the reply could not be built", Code.FailedPrecondition);
    });
    expect(error?.code).toBe(Code.FailedPrecondition);
    expect(await changed(requestId)).toBe(true);
    expect(await entries(requestId)).toEqual([expect.objectContaining({ outcome: "failed_precondition", error_message: "the reply could not be built" })]);
  });

  it("two transactions in one call: the entry rides in the first, never twice", async () => {
    const { requestId } = await call(async (id) => {
      await inTransaction(db, (tx) => change(tx, id));
      await inTransaction(db, (tx) => change(tx, `${id}-second`));
    });
    const rows = await entries(requestId);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.tx).toBe(await txOf(requestId));
  });

  it("a call that wrote nothing to this database gets its entry after it ended", async () => {
    const { requestId } = await call(async () => {});
    expect(await entries(requestId)).toEqual([expect.objectContaining({ outcome: "ok" })]);
  });

  it("a call that failed before any transaction gets an entry with its code", async () => {
    const { requestId } = await call(async () => {
      throw new ConnectError("no such network", Code.NotFound);
    });
    expect(await entries(requestId)).toEqual([expect.objectContaining({ outcome: "not_found", error_message: "no such network" })]);
  });

  it("names what the call created first among the targets; what a transaction that rolled back made is left out", async () => {
    const { requestId, error } = await call(async (id) => {
      await inTransaction(db, async (tx) => {
        await change(tx, `${id}-lost`);
        noteCreated("made-then-rolled-back");
        throw new ConnectError("lost a race; tried again", Code.Aborted);
      }).catch(() => undefined);
      await inTransaction(db, async (tx) => {
        await change(tx, id);
        noteCreated("made-1", "made-2");
      });
      // After the entry was written: too late to be named.
      await inTransaction(db, async () => noteCreated("made-later"));
    });
    expect(error).toBeUndefined();
    expect(await targetsOf(requestId)).toEqual(["made-1", "made-2", "pa", "n1"]);
  });

  it("names what a call made outside this database (masterdata) in the entry written after it", async () => {
    const { requestId } = await call(async () => noteCreated("project-made-in-masterdata"));
    expect(await targetsOf(requestId)).toEqual(["project-made-in-masterdata", "pa", "n1"]);
    const failed = await call(async () => {
      noteCreated("invitation-made");
      throw new ConnectError("the answer was lost", Code.Unavailable);
    });
    expect(await targetsOf(failed.requestId)).toEqual(["invitation-made", "pa", "n1"]);
  });

  it("does not leak an internal error's message (it may carry SQL and its parameters)", async () => {
    const { requestId } = await call(async () => {
      throw new Error("Failed query: insert ... params: secret-value");
    });
    const [row] = await entries(requestId);
    expect(row!.outcome).toBe("unknown");
    expect(row!.error_message).not.toContain("secret-value");
  });
});

describe("what the trail stores of a request", () => {
  it("redacts secrets at any depth and keeps what PostgreSQL would refuse storable", () => {
    const r = redactRequest({ name: "a\u0000b\uD800", userData: "#cloud-config", bmcCredentials: { user: "root", password: "pw" }, nested: { consolePassword: "x", adminToken: "t" }, empty: { secret: "" } });
    expect(r).toEqual({ name: "a\uFFFDb\uFFFD", userData: "[redacted]", bmcCredentials: "[redacted]", nested: { consolePassword: "[redacted]", adminToken: "[redacted]" }, empty: { secret: "" } });
  });
});
