import { fileURLToPath } from "node:url";
import { openDatabase, type Database } from "../db/database.js";
import * as schema from "./db/schema/index.js";

export type MasterdataSchema = typeof schema;

/** Opens masterdata's own database (PostgreSQL when a URL is given, embedded PGlite otherwise) and migrates it. */
export function openMasterdataDatabase(opts: { url: string | undefined; dataDir: string | undefined }): Promise<Database<MasterdataSchema>> {
  return openDatabase({
    schema,
    url: opts.url,
    dataDir: opts.dataDir,
    migrationsFolder: fileURLToPath(new URL("./db/migrations", import.meta.url)),
    migrationLockKey: 7301,
  });
}
