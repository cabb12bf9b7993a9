import { create } from "@bufbuild/protobuf";
import { Code, createContextValues } from "@connectrpc/connect";
import { eq } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import { TokenServiceCreateRequestSchema } from "../../gen/metal/api/v1/token_pb.js";
import { kPrincipal } from "../../server/auth/context.js";
import { createTokenAuthority, type TokenAuthority } from "../../server/auth/token-authority.js";
import { toStoredRoles } from "../../server/convert/token.js";
import type { DbHandle } from "../../server/db/handle.js";
import { tokens } from "../../server/db/schema/index.js";
import { noRoles, type Principal } from "../../server/domain/roles.js";
import { uuidv7 } from "../../server/ids.js";
import { tokenRepository } from "../../server/repositories/token-repository.js";
import { createTokenService } from "../../server/services/api/token-service.js";
import { expectCode } from "../helpers/expect.js";
import { openTransaction, someoneWaitsForALock } from "../helpers/interleave.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

/**
 * A member removed from a tenant while a token is being minted from one of
 * theirs (TokenService.Create, with the calling token as parent), interleaved
 * on real PostgreSQL with separate connections: the minted token must not
 * keep the grant, whichever side locks the parent first.
 */
let db: DbHandle;
let authority: TokenAuthority;
let n = 0;

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
  authority = await createTokenAuthority(db);
});

/** A member's token granting editor in `org`, and the principal the interceptor would make of it. */
async function memberToken(): Promise<{ subject: string; org: string; parent: Principal }> {
  const subject = `bob${++n}`;
  const org = `org${n}`;
  const roles = { ...noRoles(), tenantRoles: { [org]: TenantRole.EDITOR, [subject]: TenantRole.OWNER } };
  const { secret } = await authority.issue(db, { subject, description: "sign-in", roles, createdBy: "sign-in", expiresAt: new Date(Date.now() + 3600_000) });
  return { subject, org, parent: await authority.verify(secret) };
}

const rolesOf = async (id: string) => (await db.select({ roles: tokens.roles }).from(tokens).where(eq(tokens.id, id)))[0]?.roles;

describe("a token minted while its subject's membership ends", () => {
  it("waits for a removal holding the parent and is then refused the grant the parent lost", async () => {
    const { subject, org, parent } = await memberToken();
    const service = createTokenService({ db, authority, projects: { tenantOf: async () => undefined, quotasOf: async () => undefined } });
    const removal = openTransaction(db, async (tx) => {
      await tokenRepository.capSubjectGrant(tx, subject, "tenants", org, 0);
    });
    await removal.started;
    // The caller's principal was read before the removal: the handler's own check passes.
    const ctx = { values: createContextValues().set(kPrincipal, parent) } as never;
    const mint = Promise.resolve(service.create(create(TokenServiceCreateRequestSchema, { description: "ci", roles: { tenantRoles: { [org]: TenantRole.VIEWER } } }), ctx));
    const refused = expectCode(mint, Code.PermissionDenied, `tenant_roles["${org}"]`);
    await someoneWaitsForALock(db);
    removal.commit();
    await removal.done;
    await refused;
  });

  it("a removal waits for a mint holding the parent and then caps the minted token too", async () => {
    const { subject, org, parent } = await memberToken();
    const childId = uuidv7();
    const mint = openTransaction(db, async (tx) => {
      await tokenRepository.holdLiveParent(tx, parent.tokenId);
      await tokenRepository.create(tx, {
        id: childId,
        subject,
        description: "ci",
        roles: toStoredRoles({ ...noRoles(), tenantRoles: { [org]: TenantRole.VIEWER } }),
        createdBy: subject,
        expiresAt: parent.expiresAt,
        parentId: parent.tokenId,
        bootstrap: false,
      });
    });
    await mint.started;
    const removal = authority.capSubjectGrant(db, subject, { tenant: org }, 0);
    await someoneWaitsForALock(db);
    mint.commit();
    await mint.done;
    await removal;
    expect((await rolesOf(parent.tokenId))?.tenants).toEqual({ [subject]: TenantRole.OWNER });
    expect((await rolesOf(childId))?.tenants ?? {}).toEqual({});
    // Left with no grant at all, the minted token is revoked.
    expect((await tokenRepository.find(db, childId))?.revokedAt).toBeInstanceOf(Date);
  });
});
