import { describe, expect, it } from "vitest";
import { effectiveMembership, invitationTtlProblem, isMemberId, lastOwnerRefusal, mayChangeProjectQuotas, projectQuotasWithinTenant } from "../../../server/domain/tenancy.js";

describe("tenancy rules", () => {
  it("the last owner: only a change that leaves no owner is refused", () => {
    expect(lastOwnerRefusal(3, undefined, 1, "tenant t")).toContain("last owner cannot leave");
    expect(lastOwnerRefusal(3, 2, 1, "tenant t")).toContain("cannot be demoted");
    expect(lastOwnerRefusal(3, 3, 1, "tenant t")).toBeUndefined();
    expect(lastOwnerRefusal(3, undefined, 2, "tenant t")).toBeUndefined();
    expect(lastOwnerRefusal(2, undefined, 0, "tenant t")).toBeUndefined();
    expect(lastOwnerRefusal(1, undefined, 1, "tenant t")).toBeUndefined();
  });

  it("project quotas stay within the tenant's: over is a problem, unset takes the tenant's", () => {
    expect(projectQuotasWithinTenant({ machine: 10, ip: 5 }, { machine: 4 })).toEqual({ quotas: { machine: 4, ip: 5 }, problems: [] });
    expect(projectQuotasWithinTenant({ machine: 10 }, { machine: 11, network: 3 }).problems).toEqual(["quotas.machine: 11 exceeds the tenant's limit of 10"]);
    expect(projectQuotasWithinTenant({}, { network: 3 })).toEqual({ quotas: { network: 3 }, problems: [] });
    expect(projectQuotasWithinTenant({ project: 2 }, {}).quotas).toEqual({});
    expect(projectQuotasWithinTenant({}, { ip: -1 }).problems).toEqual(["quotas.ip: -1 must not be negative"]);
  });

  it("a project role is the higher of direct and inherited", () => {
    expect(effectiveMembership(2, 3)).toEqual({ role: 3, inherited: true });
    expect(effectiveMembership(3, 1)).toEqual({ role: 3, inherited: false });
    expect(effectiveMembership(2, 2)).toEqual({ role: 2, inherited: false });
    expect(effectiveMembership(undefined, 1)).toEqual({ role: 1, inherited: true });
    expect(effectiveMembership(undefined, undefined)).toBeUndefined();
  });

  it("bounds invitation lifetimes, knows member ids and who sets project quotas", () => {
    expect(invitationTtlProblem(59_999)).toBe("must be at least 1 minute");
    expect(invitationTtlProblem(30 * 86_400_000)).toBeUndefined();
    expect(invitationTtlProblem(30 * 86_400_000 + 1)).toBe("must be at most 30 days");
    expect(isMemberId("alice@example.com")).toBe(true);
    expect(isMemberId("Alice")).toBe(false);
    expect(isMemberId("a".repeat(129))).toBe(false);
    expect(mayChangeProjectQuotas({ adminRole: 2, tenantRoles: {} }, "t")).toBe(true);
    expect(mayChangeProjectQuotas({ adminRole: 1, tenantRoles: { t: 2 } }, "t")).toBe(false);
    expect(mayChangeProjectQuotas({ adminRole: 0, tenantRoles: { t: 3 } }, "t")).toBe(true);
  });
});
