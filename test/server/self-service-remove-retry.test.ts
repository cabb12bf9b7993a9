import { Code, ConnectError, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { TenantMemberService } from "../../gen/masterdata/v1/tenant_member_pb.js";
import type { DbHandle } from "../../server/db/handle.js";
import { createMembershipGrantsInterceptor } from "../../server/interceptors/membership-grants.js";
import { GRANT_CAP_SETTLE_MS, runGrantCapSweep } from "../../server/jobs/grant-cap-sweep.js";
import { createLogger } from "../../server/logger.js";
import type { TenancyDeps } from "../../server/usecases/tenancy/masterdata.js";
import { membershipGrants, removeMember, updateMember } from "../../server/usecases/tenancy/members.js";
import { expectCode } from "../helpers/expect.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

/** Bob's grants once his acme membership is gone: the tenant's and its project web's, both capped to no role. */
const BOB_CAPPED_TO_NOTHING = [
  ["bob", { tenant: "acme" }, 0],
  ["bob", { project: "web" }, 0],
];

/**
 * A role change or removal commits in masterdata and then caps the member's
 * tokens. When that second step fails (metal-api's database away for a
 * moment), the member must not keep the grant for their tokens' life: the
 * retry caps, and a removal whose answer was lost is capped by the sweep.
 * Masterdata and the token authority are stand-ins; the pending caps are
 * rows in a real metal-api database.
 */
let db: DbHandle;
const log = createLogger("silent");

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
});
beforeEach(async () => {
  await db.execute(sql`delete from pending_grant_caps`);
});

/** bob is an editor (2) of tenant acme, which has project web, until masterdata's `remove` says otherwise. */
function deps(remove: () => Promise<unknown>) {
  const capped: unknown[] = [];
  let failCaps = 0;
  let tenantRole: number | undefined = 2;
  const d = {
    db,
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
      memberships: {
        remove: async () => {
          const r = await remove();
          tenantRole = undefined;
          return r;
        },
      },
      tenantMembers: { find: async () => ({ tenantMembers: tenantRole === undefined ? [] : [{ role: tenantRole }] }) },
      projects: { find: async () => ({ projects: [{ meta: { id: "web" } }] }) },
      projectMembers: { find: async () => ({ projectMembers: [] }) },
    },
  } as unknown as TenancyDeps;
  return { d, capped, failNextCap: () => (failCaps = 1) };
}

const pendingRows = async () => ((await db.execute(sql`select subject, kind, target_id from pending_grant_caps`)) as unknown as { rows: unknown[] }).rows;
const later = () => new Date(Date.now() + GRANT_CAP_SETTLE_MS + 1_000);

/** Masterdata's remove as it answers bob's removal: once, then NotFound. */
function removedOnce() {
  let member = true;
  return async () => {
    if (!member) throw new ConnectError("membership not found", Code.NotFound);
    member = false;
    return { membership: { role: 2 } };
  };
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

  it("a removal caps and leaves nothing pending", async () => {
    const { d, capped } = deps(removedOnce());
    expect((await removeMember(d, "tenant", "acme", "bob")).previous).toBe(2);
    expect(capped).toEqual(BOB_CAPPED_TO_NOTHING);
    expect(await pendingRows()).toEqual([]);
  });

  it("a removal whose token cap failed is capped by its retry, which answers NotFound (the membership is gone)", async () => {
    const { d, capped, failNextCap } = deps(removedOnce());
    failNextCap();
    await expectCode(removeMember(d, "tenant", "acme", "bob"), Code.Unavailable);
    expect(capped).toEqual([]);
    expect(await pendingRows()).toEqual([{ subject: "bob", kind: "tenant", target_id: "acme" }]);
    await expectCode(removeMember(d, "tenant", "acme", "bob"), Code.NotFound);
    expect(capped).toEqual(BOB_CAPPED_TO_NOTHING);
    expect(await pendingRows()).toEqual([]);
  });

  it("...or, without a retry, by the sweep once the removal had time to finish", async () => {
    const { d, capped, failNextCap } = deps(removedOnce());
    failNextCap();
    await expectCode(removeMember(d, "tenant", "acme", "bob"), Code.Unavailable);
    expect(await runGrantCapSweep(d, log)).toBe(0);
    expect(capped).toEqual([]);
    expect(await runGrantCapSweep(d, log, later())).toBe(1);
    expect(capped).toEqual(BOB_CAPPED_TO_NOTHING);
    expect(await pendingRows()).toEqual([]);
  });

  it("a removal whose answer from masterdata was lost is left to the sweep, which caps at the role masterdata has", async () => {
    // Masterdata did not end the membership after all: the sweep caps at the unchanged role (nothing is taken).
    const { d, capped } = deps(async () => {
      throw new ConnectError("masterdata away", Code.Unavailable);
    });
    await expectCode(removeMember(d, "tenant", "acme", "bob"), Code.Unavailable);
    expect(await pendingRows()).toHaveLength(1);
    expect(await runGrantCapSweep(d, log, later())).toBe(1);
    expect(capped).toEqual([
      ["bob", { tenant: "acme" }, 2],
      ["bob", { project: "web" }, 2],
    ]);
    expect(await pendingRows()).toEqual([]);
  });

  it("a sweep that cannot reach masterdata keeps the row for the next one", async () => {
    const { d, capped } = deps(async () => {
      throw new ConnectError("masterdata away", Code.Unavailable);
    });
    await expectCode(removeMember(d, "tenant", "acme", "bob"), Code.Unavailable);
    (d.md.tenantMembers as unknown as { find: unknown }).find = async () => {
      throw new ConnectError("masterdata away", Code.Unavailable);
    };
    expect(await runGrantCapSweep(d, log, later())).toBe(0);
    expect(capped).toEqual([]);
    expect(await pendingRows()).toHaveLength(1);
  });

  it("a tenant removal caps the grants on every one of the tenant's projects, page by page", async () => {
    const { d, capped } = deps(removedOnce());
    const pages: Record<string, { projects: { meta: { id: string } }[]; nextPageToken: string }> = {
      "": { projects: [{ meta: { id: "web" } }], nextPageToken: "p2" },
      p2: { projects: [{ meta: { id: "db" } }], nextPageToken: "p3" },
      p3: { projects: [{ meta: { id: "ci" } }], nextPageToken: "" },
    };
    (d.md.projects as unknown as { find: unknown }).find = async ({ paging }: { paging: { pageToken: string } }) => pages[paging.pageToken];
    await removeMember(d, "tenant", "acme", "bob");
    expect(capped).toEqual([
      ["bob", { tenant: "acme" }, 0],
      ["bob", { project: "web" }, 0],
      ["bob", { project: "db" }, 0],
      ["bob", { project: "ci" }, 0],
    ]);
  });

  it("masterdata's refusals (the last owner; not a member) take nothing and leave nothing pending", async () => {
    for (const refusal of [new ConnectError('tenant "acme" would be left without an owner', Code.FailedPrecondition), new ConnectError("bob is not a member", Code.NotFound)]) {
      const { d, capped } = deps(async () => {
        throw refusal;
      });
      await expectCode(removeMember(d, "tenant", "acme", "bob"), refusal.code);
      expect(capped).toEqual([]);
      expect(await pendingRows()).toEqual([]);
    }
  });
});

describe("an operator's raw masterdata.v1 membership delete, when the token cap fails", () => {
  /** The delete of bob's membership m1 in acme through metal-api's interceptor, masterdata's answer from `deleted`. */
  function rawDelete(d: TenancyDeps, deleted: () => Promise<unknown>) {
    (d.md as unknown as { tenantMembers: unknown }).tenantMembers = {
      get: async ({ id }: { id: string }) => {
        if (id !== "m1") throw new ConnectError("not found", Code.NotFound);
        return { tenantMember: { tenantId: "acme", memberId: "bob", role: 2 } };
      },
      // What the sweep reads: bob is no member once the delete happened.
      find: async () => ({ tenantMembers: [] }),
    };
    const method = TenantMemberService.method.delete;
    const next = async () => {
      await deleted();
      return { stream: false, method, message: { tenantMember: { tenantId: "acme", memberId: "bob", role: 2 } } } as unknown as UnaryResponse;
    };
    const call = createMembershipGrantsInterceptor(membershipGrants(d))(next as never);
    return (id: string) => call({ stream: false, method, message: { id } } as unknown as UnaryRequest);
  }

  it("keeps a pending cap that the sweep takes", async () => {
    const { d, capped, failNextCap } = deps(async () => ({}));
    const del = rawDelete(d, async () => {});
    failNextCap();
    await expectCode(del("m1"), Code.Unavailable);
    expect(capped).toEqual([]);
    expect(await pendingRows()).toEqual([{ subject: "bob", kind: "tenant", target_id: "acme" }]);
    expect(await runGrantCapSweep(d, log, later())).toBe(1);
    expect(capped).toEqual(BOB_CAPPED_TO_NOTHING);
    expect(await pendingRows()).toEqual([]);
  });

  it("caps and leaves nothing pending when all goes well; a refused or unknown delete leaves nothing either", async () => {
    const { d, capped } = deps(async () => ({}));
    await rawDelete(d, async () => {})("m1");
    expect(capped).toEqual(BOB_CAPPED_TO_NOTHING);
    expect(await pendingRows()).toEqual([]);
    await expectCode(
      rawDelete(d, async () => {
        throw new ConnectError("not found", Code.NotFound);
      })("m2"),
      Code.NotFound,
    );
    await expectCode(
      rawDelete(d, async () => {
        throw new ConnectError("version mismatch", Code.FailedPrecondition);
      })("m1"),
      Code.FailedPrecondition,
    );
    expect(await pendingRows()).toEqual([]);
  });
});
