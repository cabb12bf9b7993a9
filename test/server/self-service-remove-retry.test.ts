import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { TenancyDeps } from "../../server/usecases/tenancy/masterdata.js";
import { removeMember, updateMember } from "../../server/usecases/tenancy/members.js";
import { expectCode } from "../helpers/expect.js";

/**
 * A role change commits in masterdata and then caps the member's tokens.
 * When that second step fails (metal-api's database away for a moment), the
 * retry finds the role already changed: it must still cap, or the demoted
 * member keeps the higher grant for their tokens' life.
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

describe("changing a member, retried after the token cap failed", () => {
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

  it("masterdata's other refusals (the last owner) take nothing", async () => {
    const { d, capped } = deps(async () => {
      throw new ConnectError('tenant "acme" would be left without an owner', Code.FailedPrecondition);
    });
    await expectCode(removeMember(d, "tenant", "acme", "bob"), Code.FailedPrecondition);
    expect(capped).toEqual([]);
  });
});
