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
