import { Code, ConnectError } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { createTokenAuthority, type TokenAuthority } from "../../server/auth/token-authority.js";
import type { DbHandle } from "../../server/db/handle.js";
import { identityAnnotations } from "../../server/domain/signin.js";
import { createSignIn, type SignInMasterdata } from "../../server/usecases/signin/sign-in.js";
import { useMetalDatabase } from "../helpers/metal-db.js";
import { STAND_IN_ISSUER, standInIssuer } from "../helpers/stand-in-issuer.js";

/**
 * An ID token presented again is refused before sign-in asks masterdata
 * anything: whoever replays a token they found costs the server one read of
 * its own database, not a round of masterdata calls.
 */
let db: DbHandle;
let authority: TokenAuthority;

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
  authority = await createTokenAuthority(db);
});

/** Every token is cora's, issued now and good for ten minutes. */
const issuer = standInIssuer(() => {
  const now = Math.floor(Date.now() / 1000);
  return { sub: "s-cora", email: "cora@example.test", iat: now, exp: now + 600 };
});

const log = { info: () => {}, error: () => {}, warn: () => {} } as never;

describe("sign-in with an ID token used before", () => {
  it("is refused with Unauthenticated without a call to masterdata", async () => {
    const calls: string[] = [];
    const masterdata = {
      tenants: { get: async ({ id }: { id: string }) => (calls.push("tenants.get"), { tenant: { meta: { id, annotations: identityAnnotations(STAND_IN_ISSUER, "s-cora") }, name: id } }) },
      tenantMembers: { find: async () => (calls.push("tenantMembers.find"), { tenantMembers: [{ tenantId: "cora@example.test", memberId: "cora@example.test", role: 4 }], nextPageToken: "" }) },
      projectMembers: { find: async () => (calls.push("projectMembers.find"), { projectMembers: [], nextPageToken: "" }) },
    } as unknown as SignInMasterdata;
    const signIn = createSignIn({ issuer, authority, db, log, masterdata });
    const token = `replay.${Date.now()}.token`;
    expect((await signIn.exchange({ idToken: token }, "", "req-1")).user).toBe("cora@example.test");
    const before = calls.length;
    expect(before).toBeGreaterThan(0);
    const again = await signIn.exchange({ idToken: token }, "", "req-2").catch((e: unknown) => ConnectError.from(e));
    expect(again).toBeInstanceOf(ConnectError);
    expect((again as ConnectError).code).toBe(Code.Unauthenticated);
    expect((again as ConnectError).rawMessage).toContain("exchanged for a token already");
    expect(calls.length).toBe(before);
    // Another token of the same person signs in as usual.
    expect((await signIn.exchange({ idToken: `${token}.other` }, "", "req-3")).user).toBe("cora@example.test");
  });
});
