import { type Client, createClient, createRouterTransport } from "@connectrpc/connect";
import { asc } from "drizzle-orm";
import { ProjectMemberService } from "../../../gen/masterdata/v1/project_member_pb.js";
import { ProjectService } from "../../../gen/masterdata/v1/project_pb.js";
import { TenantMemberService } from "../../../gen/masterdata/v1/tenant_member_pb.js";
import { TenantService } from "../../../gen/masterdata/v1/tenant_pb.js";
import { type MasterdataDatabase, openMasterdataDatabase } from "../../../server/masterdata/database.js";
import { history, projectMembers, projects, tenantMembers, tenants, usedIds } from "../../../server/masterdata/db/schema/index.js";
import { createMasterdataRoutes } from "../../../server/masterdata/routes.js";
import { eventually } from "../../helpers/eventually.js";
import { createScratchDatabase } from "../../helpers/postgres.js";

export interface MasterdataHarness {
  database: MasterdataDatabase;
  tenants: Client<typeof TenantService>;
  projects: Client<typeof ProjectService>;
  tenantMembers: Client<typeof TenantMemberService>;
  projectMembers: Client<typeof ProjectMemberService>;
  /** Every row of every table, history included: equal snapshots mean nothing changed. */
  snapshot(): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * A scratch PostgreSQL database of the test file's own, migrated by
 * openMasterdataDatabase, and clients that go through the real Connect
 * routes (serialisation, error codes) over an in-process transport.
 */
export async function openMasterdataHarness(): Promise<MasterdataHarness> {
  const scratch = await createScratchDatabase("md_test", { from: "masterdata" });
  const database = await openMasterdataDatabase({ url: scratch.url, dataDir: undefined });
  const transport = createRouterTransport(createMasterdataRoutes({ db: database.db, projectUsage: async () => [] }));
  const db = database.db;
  return {
    database,
    tenants: createClient(TenantService, transport),
    projects: createClient(ProjectService, transport),
    tenantMembers: createClient(TenantMemberService, transport),
    projectMembers: createClient(ProjectMemberService, transport),
    async snapshot() {
      return {
        tenants: await db.select().from(tenants).orderBy(asc(tenants.id)),
        projects: await db.select().from(projects).orderBy(asc(projects.id)),
        tenantMembers: await db.select().from(tenantMembers).orderBy(asc(tenantMembers.id)),
        projectMembers: await db.select().from(projectMembers).orderBy(asc(projectMembers.id)),
        history: await db.select().from(history).orderBy(asc(history.seq)),
        usedIds: await db.select().from(usedIds).orderBy(asc(usedIds.kind), asc(usedIds.id)),
      };
    },
    async close() {
      await database.close();
      scratch.dropLater();
    },
  };
}

/** Returns once the clock has moved past the millisecond it was called in: the next change gets a later timestamp than every earlier one. */
export async function nextMillisecond(): Promise<void> {
  const now = Date.now();
  await eventually("the clock to reach the next millisecond", () => Date.now() > now);
}
