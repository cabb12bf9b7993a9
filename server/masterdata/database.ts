import { fileURLToPath } from "node:url";
import { type Database, openDatabase } from "../db/database.js";
import * as schema from "./db/schema/index.js";

export type MasterdataSchema = typeof schema;
export type MasterdataDatabase = Database<MasterdataSchema>;

/** Serialises migrations of masterdata replicas starting at the same time. */
export const MASTERDATA_MIGRATION_LOCK_KEY = 7301;

export interface MasterdataDatabaseOptions {
  /** PostgreSQL URL (MASTERDATA_DATABASE_URL); undefined selects embedded PGlite. */
  url: string | undefined;
  /** PGlite data directory when there is no URL; undefined too means in memory. */
  dataDir: string | undefined;
  /** Connections of the PostgreSQL pool (default 20). */
  poolSize?: number;
}

/**
 * Opens masterdata's own database and applies its migrations before returning.
 * The migrations folder is found next to this module, whatever the cwd.
 */
export function openMasterdataDatabase(opts: MasterdataDatabaseOptions): Promise<MasterdataDatabase> {
  return openDatabase({
    schema,
    url: opts.url,
    dataDir: opts.dataDir,
    poolSize: opts.poolSize,
    migrationsFolder: fileURLToPath(new URL("./db/migrations", import.meta.url)),
    migrationLockKey: MASTERDATA_MIGRATION_LOCK_KEY,
  });
}
