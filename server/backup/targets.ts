import { readFileSync, statSync } from "node:fs";
import type { Logger } from "../logger.js";
import { BackupKeyError, type BackupKeys, deriveKeys, parseKey } from "./crypto.js";
import type { BackupSettings } from "./settings.js";
import { DirStore, S3Store, type Store } from "./store.js";

/** The stores the settings name: the directory first (restore reads it first), then S3. `only` picks one kind. */
export function storesOf(settings: BackupSettings, only?: "dir" | "s3"): Store[] {
  const stores: Store[] = [];
  if (settings.dir && only !== "s3") stores.push(new DirStore(settings.dir));
  if (settings.s3 && only !== "dir") {
    const s = settings.s3;
    stores.push(new S3Store({ endpoint: s.endpoint, bucket: s.bucket, prefix: s.prefix, region: s.region, credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } }));
  }
  return stores;
}

/** The keys of METAL_BACKUP_KEY_FILE, or undefined without one. Warns when others may read the file. */
export function loadKeys(settings: BackupSettings, log?: Logger): BackupKeys | undefined {
  if (!settings.keyFile) return undefined;
  let content: Buffer;
  try {
    content = readFileSync(settings.keyFile);
    if ((statSync(settings.keyFile).mode & 0o077) !== 0) log?.warn({ file: settings.keyFile }, `the backup key file ${settings.keyFile} can be read by others than its owner (chmod 600)`);
  } catch (err) {
    throw new BackupKeyError(`METAL_BACKUP_KEY_FILE: cannot read ${settings.keyFile} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  return deriveKeys(parseKey(content));
}
