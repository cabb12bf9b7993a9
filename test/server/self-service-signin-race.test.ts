import { beforeAll, describe, expect, it } from "vitest";
import { TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import { createTokenAuthority, type TokenAuthority } from "../../server/auth/token-authority.js";
import type { DbHandle } from "../../server/db/handle.js";
import { identityAnnotations } from "../../server/domain/signin.js";
import { tokenRepository } from "../../server/repositories/token-repository.js";
import { createSignIn, type SignInMasterdata } from "../../server/usecases/signin/sign-in.js";
import { useMetalDatabase } from "../helpers/metal-db.js";
import { STAND_IN_ISSUER, standInIssuer } from "../helpers/stand-in-issuer.js";

/**
 * A member removed from a tenant while they sign in: the removal commits after
 * sign-in read the memberships and caps the tokens that exist then, before
 * the new token is written. The new token must not carry the ended grant.
 */
let db: DbHandle;
let authority: TokenAuthority;

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
  authority = await createTokenAuthority(db);
});

const issuer = standInIssuer(() => ({ sub: "s-bob", email: "bob@example.test", iat: 0, exp: 0 }));

/** Masterdata whose memberships of bob change after the first read: `reads` lists what each read answers. */
function masterdataWith(reads: { tenantId: string; role: number }[][]): SignInMasterdata {
  let read = 0;
  return {
    tenants: { get: async ({ id }: { id: string }) => ({ tenant: { meta: { id, annotations: identityAnnotations(STAND_IN_ISSUER, "s-bob") }, name: id } }) },
    tenantMembers: {
      find: async () => ({ tenantMembers: (reads[Math.min(read++, reads.length - 1)] ?? []).map((m) => ({ ...m, memberId: "bob@example.test" })), nextPageToken: "" }),
    },
    projectMembers: { find: async () => ({ projectMembers: [], nextPageToken: "" }) },
  } as unknown as SignInMasterdata;
}

const log = { info: () => {}, error: () => {}, warn: () => {} } as never;

describe("sign-in racing a removal", () => {
  it("a membership that ended while the token was issued is not in the token", async () => {
    const own = { tenantId: "bob@example.test", role: TenantRole.OWNER };
    const signIn = createSignIn({ issuer, authority, db, log, masterdata: masterdataWith([[own, { tenantId: "acme", role: TenantRole.EDITOR }], [own]]) });
    const r = await signIn.exchange({ idToken: "x.y.z" }, "", "req-1");
    const row = await tokenRepository.find(db, r.row.id);
    expect(row?.roles.tenants).toEqual({ "bob@example.test": TenantRole.OWNER });
    expect(row?.revokedAt).toBeNull();
    expect((await authority.verify(r.secret)).roles.tenantRoles).toEqual({ "bob@example.test": TenantRole.OWNER });
  });

  it("memberships that stay are granted as they are", async () => {
    const own = { tenantId: "bob@example.test", role: TenantRole.OWNER };
    const both = [own, { tenantId: "acme2", role: TenantRole.VIEWER }];
    const signIn = createSignIn({ issuer, authority, db, log, masterdata: masterdataWith([both, both]) });
    const r = await signIn.exchange({ idToken: "x.y.z" }, "", "req-2");
    expect((await tokenRepository.find(db, r.row.id))?.roles.tenants).toEqual({ "bob@example.test": TenantRole.OWNER, acme2: TenantRole.VIEWER });
  });
});
