/**
 * What the metal-api needs to know about projects, answered by masterdata.
 * An interface so that authorization and validation do not depend on how
 * masterdata is reached (in-process or over HTTP).
 */
export interface ProjectDirectory {
  /** The tenant owning the project, or undefined if there is no such project. */
  tenantOf(projectId: string): Promise<string | undefined>;
  /** The project's quotas (unset = unlimited), or undefined if there is no such project. */
  quotasOf(projectId: string): Promise<ProjectQuotas | undefined>;
}

export interface ProjectQuotas {
  machine?: number;
  ip?: number;
  network?: number;
}

/**
 * Collapses concurrent calls with the same key into one: while a call for a
 * key is in flight, callers share its answer. Nothing is kept after it
 * settles, so no answer is older than the request that asked.
 */
export function singleFlight<T>(): (key: string, fn: () => Promise<T>) => Promise<T> {
  const inFlight = new Map<string, Promise<T>>();
  return (key, fn) => {
    const pending = inFlight.get(key);
    if (pending) return pending;
    const p = fn().finally(() => inFlight.delete(key));
    inFlight.set(key, p);
    return p;
  };
}
