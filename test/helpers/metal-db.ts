import { afterAll } from "vitest";
import type { Db } from "../../server/db/database.js";
import { openMetalDatabase } from "../../server/db/metal-database.js";
import { createScratchDatabase } from "./postgres.js";

/**
 * A migrated metal-api database of its own for the calling test file, on real
 * PostgreSQL; dropped when the file's tests are done.
 */
export async function useMetalDatabase(opts: { poolSize?: number } = {}): Promise<{ db: Db<any>; url: string }> {
  const scratch = await createScratchDatabase("metal_test", { from: "metal" });
  const database = await openMetalDatabase({ url: scratch.url, dataDir: undefined, poolSize: opts.poolSize });
  afterAll(async () => {
    await database.close();
    await scratch.drop();
  });
  return { db: database.db, url: scratch.url };
}
