import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { TenancyDeps } from "../../server/usecases/tenancy/masterdata.js";
import { removeMember, updateMember } from "../../server/usecases/tenancy/members.js";
import { expectCode } from "../helpers/expect.js";

/**
 * A removal commits in masterdata and then takes the member's token grants.
 * When that second step fails (metal-api's database away for a moment), the
 * retry finds no membership: it must still take the grants, or the removed
 * member keeps access for their tokens' life.
 */
function deps(removeAnswer: () => Promise<unknown>) {
  const capped: unknown[] = [];
  let failCaps = 0;
  const d = {
    db: {},
    authority: {
      capSubjectGrant: async (_db: unknown, subject: string, scope: unknown, max: number) => {
        if (failCaps > 0) {
          failCaps--;
          throw new ConnectError("database away", Code.Unavailable);
        }
        capped.push([subject, scope, max]);
      },
    },
    md: {
      memberships: { remove: removeAnswer },
      projects: { find: async () => ({ projects: [{ meta: { id: "web" } }] }) },
      projectMembers: { find: async () => ({ projectMembers: [] }) },
    },
  } as unknown as TenancyDeps;
  return { d, capped, failNextCap: () => (failCaps = 1) };
}

describe("removing a member, retried after the token cap failed", () => {
  it("takes the grants on the retry that finds the membership gone, and answers NotFound", async () => {
    let removed = false;
    const { d, capped, failNextCap } = deps(async () => {
      if (removed) throw new ConnectError('"bob" is not a member of tenant "acme"', Code.NotFound);
      removed = true;
      return { membership: { role: 2 } };
    });
    failNextCap();
    await expectCode(removeMember(d, "tenant", "acme", "bob"), Code.Unavailable);
    expect(capped).toEqual([]);
    await expectCode(removeMember(d, "tenant", "acme", "bob"), Code.NotFound, "not a member");
    expect(capped).toEqual([
      ["bob", { tenant: "acme" }, 0],
      ["bob", { project: "web" }, 0],
    ]);
  });

  it("a demotion retried after its token cap failed caps on the retry (the role is already the new one)", async () => {
    const { d, capped, failNextCap } = deps(async () => ({}));
    let current = 3;
    (d.md.memberships as unknown as { setRole: unknown }).setRole = async ({ role }: { role: number }) => {
      const previousRole = current;
      current = role;
      return { previousRole };
    };
    failNextCap();
    await expectCode(updateMember(d, "tenant", "acme", "bob", 1), Code.Unavailable);
    expect((await updateMember(d, "tenant", "acme", "bob", 1)).previous).toBe(1);
    expect(capped).toEqual([
      ["bob", { tenant: "acme" }, 1],
      ["bob", { project: "web" }, 1],
    ]);
  });

  it("a project's NotFound takes nothing (the member may hold the project through its tenant)", async () => {
    const { d, capped } = deps(async () => {
      throw new ConnectError('"bob" is not a member of project "web"', Code.NotFound);
    });
    await expectCode(removeMember(d, "project", "web", "bob"), Code.NotFound);
    expect(capped).toEqual([]);
  });

  it("masterdata's other refusals (the last owner) take nothing", async () => {
    const { d, capped } = deps(async () => {
      throw new ConnectError('tenant "acme" would be left without an owner', Code.FailedPrecondition);
    });
    await expectCode(removeMember(d, "tenant", "acme", "bob"), Code.FailedPrecondition);
    expect(capped).toEqual([]);
  });
});
