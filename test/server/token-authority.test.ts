import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createTokenAuthority, type TokenAuthority } from "../../server/auth/token-authority.js";
import type { DbHandle } from "../../server/db/handle.js";
import { noRoles } from "../../server/domain/roles.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

let db: DbHandle;
let authority: TokenAuthority;

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
  authority = await createTokenAuthority(db);
});

afterEach(() => {
  vi.useRealTimers();
});

const issue = (expiresInMs = 3_600_000) => authority.issue(db, { subject: "tess", description: "", roles: noRoles(), createdBy: "test", expiresAt: new Date(Date.now() + expiresInMs) });

async function refusal(secret: string, by = authority): Promise<ConnectError> {
  const err = await by.verify(secret).then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  expect(err, "the token should have been refused").toBeDefined();
  expect(err!.code).toBe(Code.Unauthenticated);
  return err!;
}

// A verified signature is remembered per secret (verify is the costly part of a call); none of that may
// let a token live longer than it should.
describe("token authority, once a token has been verified", () => {
  it("still refuses it once it has expired", async () => {
    const { secret } = await issue(60_000);
    expect((await authority.verify(secret)).subject).toBe("tess");
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 61_000 });
    expect((await refusal(secret)).rawMessage).toContain("expired");
  });

  it("still refuses a secret that differs from it in its signature", async () => {
    const { secret } = await issue();
    await authority.verify(secret);
    const last = secret.at(-2) === "A" ? "B" : "A";
    const forged = `${secret.slice(0, -2)}${last}${secret.at(-1)}`;
    expect((await refusal(forged)).rawMessage).toContain("not valid");
  });

  it("refuses it at once after a revocation on this replica, and within the row cache bound (5 s) on another", async () => {
    const other = await createTokenAuthority(db);
    const { row, secret } = await issue();
    await authority.verify(secret);
    await other.verify(secret);
    await authority.revoke(db, row.id);
    expect((await refusal(secret)).rawMessage).toContain("revoked");
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 5_001 });
    expect((await refusal(secret, other)).rawMessage).toContain("revoked");
  });
});
