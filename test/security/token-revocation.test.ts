import { Code, ConnectError } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { TokenService } from "../../gen/metal/api/v1/token_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { expectCode } from "../helpers/expect.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/**
 * Issue 12 item 8: revoking a token revokes what was minted from it (at any
 * depth), and a token lists and revokes only itself and its descendants.
 */
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});

const ownerOf = async (subject: string) => (await server.client(AdminTokenService, server.adminToken).create({ subject, description: "owner", roles: { projectRoles: { p1: ProjectRole.OWNER } } })).secret;

async function mint(parent: string, role: ProjectRole, description: string) {
  const r = await server.client(TokenService, parent).create({ description, roles: { projectRoles: { p1: role } } });
  return { id: r.token!.id, secret: r.secret };
}

const works = (secret: string) => server.client(UserService, secret).get({});

describe("token revocation", () => {
  it("cascades to every token minted from the revoked one, also ones this replica never cached", async () => {
    const owner = await ownerOf("olivia");
    const viewer = await mint(owner, ProjectRole.VIEWER, "viewer");
    const used = await mint(viewer.secret, ProjectRole.VIEWER, "grandchild, verified before the revocation");
    const unused = await mint(viewer.secret, ProjectRole.VIEWER, "grandchild, never used");
    const deeper = await mint(unused.secret, ProjectRole.VIEWER, "great-grandchild");
    await works(used.secret); // now in the verification cache

    await server.client(TokenService, owner).revoke({ id: viewer.id });
    for (const t of [viewer, used, unused, deeper]) await expectCode(works(t.secret), Code.Unauthenticated, "revoked");
    await works(owner);

    // The operator revokes the root: what is left under it goes too.
    const sibling = await mint(owner, ProjectRole.EDITOR, "sibling");
    await works(sibling.secret);
    const ownerId = (await works(owner)).user!.token!.id;
    await server.client(AdminTokenService, server.adminToken).revoke({ id: ownerId });
    await expectCode(works(owner), Code.Unauthenticated, "revoked");
    await expectCode(works(sibling.secret), Code.Unauthenticated, "revoked");
  });

  it("lets a token list and revoke only itself and what was minted from it, never its creator or siblings", async () => {
    const owner = await ownerOf("oscar");
    const ownerId = (await works(owner)).user!.token!.id;
    const viewer = await mint(owner, ProjectRole.VIEWER, "viewer");
    const sibling = await mint(owner, ProjectRole.VIEWER, "sibling");
    const child = await mint(viewer.secret, ProjectRole.VIEWER, "child of the viewer");

    const listed = await server.client(TokenService, viewer.secret).list({});
    expect(listed.tokens.map((t) => t.id).sort()).toEqual([viewer.id, child.id].sort());

    const tokens = server.client(TokenService, viewer.secret);
    // Outsiders get one answer: "not there" for the creator and for a sibling.
    await expectCode(tokens.revoke({ id: ownerId }), Code.NotFound);
    await expectCode(tokens.revoke({ id: sibling.id }), Code.NotFound);
    await works(owner);
    await works(sibling.secret);

    await tokens.revoke({ id: child.id });
    await expectCode(works(child.secret), Code.Unauthenticated, "revoked");
    await works(viewer.secret);

    // The owner still sees its whole lineage, the revoked child included.
    const all = await server.client(TokenService, owner).list({});
    expect(all.tokens.map((t) => t.id).sort()).toEqual([ownerId, viewer.id, sibling.id, child.id].sort());
  });

  it("never leaves a token valid that was minted while its parent was being revoked", async () => {
    for (let round = 0; round < 8; round++) {
      const owner = await ownerOf(`race${round}`);
      const parent = await mint(owner, ProjectRole.EDITOR, "parent");
      const [minted] = await Promise.allSettled([mint(parent.secret, ProjectRole.VIEWER, "racing child"), server.client(TokenService, owner).revoke({ id: parent.id })]);
      if (minted.status === "fulfilled") {
        await expectCode(works(minted.value.secret), Code.Unauthenticated, "revoked");
      } else {
        expect(Code[ConnectError.from(minted.reason).code]).toBe(Code[Code.Unauthenticated]);
      }
    }
  });
});
