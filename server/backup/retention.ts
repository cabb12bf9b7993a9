/** Which backups to delete: pure, from ids, their state and the clock. */

export interface RetentionPolicy {
  /** Keep at most this many complete backups (0: no limit by count). */
  keep: number;
  /** Delete complete backups older than this (undefined: no limit by age). */
  maxAgeMs: number | undefined;
  /**
   * A backup without a manifest older than this is one that failed or was
   * cut off, not one being written now: it is deleted.
   */
  partialGraceMs: number;
}

export interface StoredBackup {
  id: string;
  /** When it was started (from its id). */
  time: Date;
  /** Its manifest exists. */
  complete: boolean;
}

/**
 * The ids to delete, oldest first. The newest complete backup is never
 * deleted, whatever the policy says: retention must not leave nothing to
 * restore (a stopped schedule would otherwise age the last one away).
 */
export function toPrune(backups: readonly StoredBackup[], policy: RetentionPolicy, now: Date): string[] {
  const sorted = [...backups].sort((a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : -1));
  const doomed = new Set<string>();
  let completeSeen = 0;
  for (const b of sorted) {
    const age = now.getTime() - b.time.getTime();
    if (!b.complete) {
      if (age > policy.partialGraceMs) doomed.add(b.id);
      continue;
    }
    completeSeen++;
    if (completeSeen === 1) continue;
    if (policy.keep > 0 && completeSeen > policy.keep) doomed.add(b.id);
    else if (policy.maxAgeMs !== undefined && age > policy.maxAgeMs) doomed.add(b.id);
  }
  return sorted
    .filter((b) => doomed.has(b.id))
    .reverse()
    .map((b) => b.id);
}
