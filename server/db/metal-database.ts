import { fileURLToPath } from "node:url";
import { type Database, openDatabase } from "./database.js";
import * as schema from "./schema/index.js";

export type MetalSchema = typeof schema;

/** Opens the metal-api database (PostgreSQL when a URL is given, embedded PGlite otherwise) and migrates it. */
export function openMetalDatabase(opts: { url: string | undefined; dataDir: string | undefined; poolSize?: number }): Promise<Database<MetalSchema>> {
  return openDatabase({
    schema,
    url: opts.url,
    dataDir: opts.dataDir,
    migrationsFolder: fileURLToPath(new URL("./migrations", import.meta.url)),
    migrationLockKey: 7201,
    poolSize: opts.poolSize,
  });
}
