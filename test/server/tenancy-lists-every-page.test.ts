import { describe, expect, it } from "vitest";
import type { Masterdata } from "../../server/usecases/tenancy/masterdata.js";
import { projectMembers, projectsOf, tenantMembers, tenantsOf } from "../../server/usecases/tenancy/memberships.js";

/**
 * What tenancy shows (a tenant's or project's members, a user's tenants and
 * projects) is every row masterdata has, read page by page, not its first
 * page: a stand-in masterdata answers 1,000 rows a page (its maximum), and
 * each list here is longer than that.
 */
const PAGE = 1000;

/** A Find over `rows`, 1,000 a page, its page token the next row's index. */
function paged<T>(rows: T[], key: string) {
  return async ({ paging }: { paging: { limit: number; pageToken: string } }) => {
    expect(paging.limit).toBe(PAGE);
    const from = Number(paging.pageToken || 0);
    const to = from + paging.limit;
    return { [key]: rows.slice(from, to), nextPageToken: to < rows.length ? String(to) : "" };
  };
}

const ids = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(5, "0")}`);

function masterdata(): Masterdata {
  const members = ids(1500, "m").map((id) => ({ memberId: id, tenantId: "acme", role: 1, meta: {} }));
  const projectRows = ids(1200, "p").map((id) => ({ meta: { id }, tenantId: "acme" }));
  const directMembers = ids(1100, "d").map((id) => ({ tenantId: id, projectId: "web", role: 2, meta: {} }));
  const ownProjects = ids(1300, "q").map((id) => ({ tenantId: "eve", projectId: id, role: 1, meta: {} }));
  const tenantsOfEve = ids(1001, "t").map((id) => ({ memberId: "eve", tenantId: id, role: 1, meta: {} }));
  return {
    tenants: { get: async ({ id }: { id: string }) => ({ tenant: { meta: { id }, name: id } }) },
    projects: {
      find: async (req: { tenantId: string; paging: { limit: number; pageToken: string } }) => paged(req.tenantId === "acme" ? projectRows : [], "projects")(req),
      get: async ({ id }: { id: string }) => ({ project: { meta: { id }, tenantId: "elsewhere" } }),
    },
    tenantMembers: {
      find: async (req: { tenantId?: string; memberId?: string; paging: { limit: number; pageToken: string } }) => paged(req.memberId === "eve" ? tenantsOfEve : members, "tenantMembers")(req),
    },
    projectMembers: {
      find: async (req: { projectId?: string; tenantId?: string; paging: { limit: number; pageToken: string } }) => paged(req.tenantId === "eve" ? ownProjects : directMembers, "projectMembers")(req),
    },
  } as unknown as Masterdata;
}

describe("tenancy lists with more than a page of rows", () => {
  it("a tenant's members: all 1,500", async () => {
    const got = await tenantMembers(masterdata(), "acme");
    expect(got).toHaveLength(1500);
    expect(got.at(-1)?.id).toBe("m01499");
  });

  it("a project's members: its 1,100 direct ones and its tenant's 1,500", async () => {
    const got = await projectMembers(masterdata(), { meta: { id: "web" }, tenantId: "acme" } as never);
    expect(got).toHaveLength(2600);
    expect(got.filter((m) => m.inherited)).toHaveLength(1500);
  });

  it("a user's tenants and projects: 1,001 tenants, 1,300 direct projects", async () => {
    const md = masterdata();
    const tenants = await tenantsOf(md, "eve");
    expect(tenants).toHaveLength(1001);
    // None of eve's 1,001 tenants has a project; her own direct memberships are 1,300.
    expect(await projectsOf(md, "eve", tenants)).toHaveLength(1300);
  });

  it("a member of acme sees all 1,200 of its projects", async () => {
    const md = masterdata();
    const acme = [{ tenant: { meta: { id: "acme" } }, role: 1 }] as never;
    const got = await projectsOf(md, "m00007", acme);
    expect(got.filter((p) => p.inherited)).toHaveLength(1200);
  });
});
