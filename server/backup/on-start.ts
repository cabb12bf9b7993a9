import type { Config } from "../config.js";
import type { Logger } from "../logger.js";
import { RestoreRefused, restoreIfEmpty } from "./restore.js";
import { loadBackupSettings } from "./settings.js";
import { loadKeys, storesOf } from "./targets.js";

/**
 * metal-api's restore on start (METAL_RESTORE_ON_START=true): before the
 * databases are opened and migrated, restores the newest good backup into
 * them when both are empty (server/backup/restore.ts restoreIfEmpty). The
 * backup settings come from the environment (METAL_BACKUP_*), the
 * databases from metal-api's own configuration.
 */
export async function restoreOnStartIfAsked(config: Config, env: NodeJS.ProcessEnv, log: Logger): Promise<void> {
  const asked = (env.METAL_RESTORE_ON_START ?? "").toLowerCase();
  if (!["1", "true", "yes", "on"].includes(asked)) return;
  const settings = loadBackupSettings({ ...env, METAL_DATA_DIR: config.dataDir, DATABASE_URL: config.databaseUrl ?? "", MASTERDATA_DATABASE_URL: config.masterdataDatabaseUrl ?? "" }, []);
  const stores = storesOf(settings);
  if (stores.length === 0) throw new RestoreRefused("METAL_RESTORE_ON_START needs METAL_BACKUP_DIR and/or METAL_BACKUP_S3_ENDPOINT");
  const outcome = await restoreIfEmpty({ settings, stores, keys: loadKeys(settings, log), log });
  if ("restored" in outcome) log.info({ backup: outcome.restored.id, createdAt: outcome.restored.createdAt }, `restored backup ${outcome.restored.id} on start`);
  else log.info({ reason: outcome.skipped }, `restore on start: nothing restored, ${outcome.skipped}`);
}
