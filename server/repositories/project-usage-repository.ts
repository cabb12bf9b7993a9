import { eq, sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";
import { ips, machines, networks, sizeReservations } from "../db/schema/index.js";

/** What a project can own in the metal-api database, with the words that name it. */
const OWNED = [
  { table: machines, column: machines.project, one: "machine", many: "machines" },
  { table: networks, column: networks.project, one: "network", many: "networks" },
  { table: ips, column: ips.project, one: "IP", many: "IPs" },
  { table: sizeReservations, column: sizeReservations.project, one: "size reservation", many: "size reservations" },
] as const;

/** What in the metal-api database still belongs to a project: masterdata asks before it deletes one. */
export const projectUsageRepository = {
  /** E.g. ["2 machines", "1 network", "3 IPs"]; empty when the project owns nothing here. */
  async describe(db: DbHandle, projectId: string): Promise<string[]> {
    const counts = await Promise.all(
      OWNED.map(async (o) => {
        const [r] = await db.select({ n: sql<number>`count(*)::int` }).from(o.table).where(eq(o.column, projectId));
        return Number(r?.n ?? 0);
      }),
    );
    return OWNED.flatMap((o, i) => (counts[i]! > 0 ? [`${counts[i]} ${counts[i] === 1 ? o.one : o.many}`] : []));
  },
};
