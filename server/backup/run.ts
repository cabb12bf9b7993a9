import type { Logger } from "../logger.js";
import { createBackup, prune } from "./backup.js";
import type { BackupKeys } from "./crypto.js";
import { targetsNotEmpty } from "./restore.js";
import type { BackupSettings } from "./settings.js";
import type { Store } from "./store.js";

/**
 * The sidecar: a backup now and then every interval (measured from one
 * start to the next), retention after each. Outcomes go to the log (ids,
 * sizes, durations, targets; no URLs, keys or credentials). A failed backup
 * is logged and retried at the next interval; it never stops the loop.
 * Empty databases (metal-api not started yet, or a restore pending) are not
 * backed up: an empty backup would count against retention.
 */
export function runSchedule(o: { settings: BackupSettings; stores: Store[]; keys: BackupKeys | undefined; log: Logger }): { stop(): Promise<void>; done: Promise<void> } {
  let stopped = false;
  let wake: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const once = async () => {
    const empty = await targetsNotEmpty(o.settings).then(
      (held) => held === undefined,
      () => false,
    );
    if (empty) {
      o.log.info("both databases are empty: no backup this time");
      return;
    }
    try {
      await createBackup(o);
    } catch (err) {
      o.log.error({ err: (err as Error).message }, `backup failed: ${(err as Error).message}`);
    }
    try {
      await prune(o);
    } catch (err) {
      o.log.error({ err: (err as Error).message }, `retention failed: ${(err as Error).message}`);
    }
  };
  const done = (async () => {
    o.log.info(
      { intervalMs: o.settings.intervalMs, keep: o.settings.retention.keep, maxAgeMs: o.settings.retention.maxAgeMs, targets: o.stores.map((s) => s.name) },
      "metal-backup run: backing up on a schedule",
    );
    while (!stopped) {
      const started = Date.now();
      await once();
      if (stopped) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, Math.max(0, o.settings.intervalMs - (Date.now() - started)));
      });
    }
  })();
  return {
    done,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      wake?.();
      await done;
    },
  };
}
