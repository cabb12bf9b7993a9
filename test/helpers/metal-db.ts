import { afterAll } from "vitest";
import type { DbHandle } from "../../server/db/handle.js";
import { openMetalDatabase } from "../../server/db/metal-database.js";
import { createScratchDatabase } from "./postgres.js";

/**
 * A migrated metal-api database of its own for the calling test file, on real
 * PostgreSQL; dropped when the file's tests are done.
 */
export async function useMetalDatabase(opts: { poolSize?: number } = {}): Promise<{ db: DbHandle; url: string }> {
  const scratch = await createScratchDatabase("metal_test", { from: "metal" });
  const database = await openMetalDatabase({ url: scratch.url, dataDir: undefined, poolSize: opts.poolSize });
  afterAll(async () => {
    await database.close();
    scratch.dropLater();
  });
  return { db: database.db, url: scratch.url };
}
