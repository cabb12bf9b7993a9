import { AdminRole, adminRoleName, effectiveProjectRole, levelName, type Principal, type Roles } from "./roles.js";

/**
 * Lists what `requested` grants beyond what the creating token holds: a token
 * can only hand on (a part of) its own roles. Operator admins may grant
 * anything. `projectTenants` maps each requested project to its tenant, so
 * that tenant roles count for their projects.
 */
export function excessGrants(creator: Principal, requested: Roles, projectTenants: Record<string, string | undefined>): string[] {
  const held = creator.roles;
  if (held.adminRole === AdminRole.ADMIN) return [];
  const problems: string[] = [];
  if (requested.adminRole > held.adminRole) {
    problems.push(`roles.admin_role: ${adminRoleName(requested.adminRole)} exceeds your ${adminRoleName(held.adminRole)}`);
  }
  for (const [project, role] of Object.entries(requested.projectRoles)) {
    const have = effectiveProjectRole(held, project, projectTenants[project]);
    if (role > have) problems.push(`roles.project_roles["${project}"]: ${levelName(role)} exceeds your ${levelName(have)}`);
  }
  for (const [tenant, role] of Object.entries(requested.tenantRoles)) {
    const have = held.tenantRoles[tenant] ?? 0;
    if (role > have) problems.push(`roles.tenant_roles["${tenant}"]: ${levelName(role)} exceeds your ${levelName(have)}`);
  }
  if (requested.infraPartition !== "" && requested.infraPartition !== held.infraPartition) {
    problems.push(`roles.infra_partition: you hold no infra role for "${requested.infraPartition}"`);
  }
  return problems;
}
