/**
 * The projects one tenant call may read and write. It is made once per call
 * from the request's `project` field — the field the auth interceptor checked
 * the caller's role on before the handler ran — and every tenant repository
 * method takes it and puts `project IN (...)` into its SQL. A row of another
 * project is then not found by the same query that finds nothing, so "not
 * yours" and "not there" are one answer by construction, and a handler cannot
 * forget the check: without a scope it cannot call the method at all.
 */
export interface ProjectScope {
  /** At least one project; "" is one no row belongs to. */
  readonly projects: readonly string[];
  readonly [scopeBrand]: true;
}

// Only this module can make a ProjectScope: an object literal of the same shape does not type-check.
declare const scopeBrand: unique symbol;

/**
 * The scope of a call that names `project` (already authorized for it by the
 * auth interceptor). Only an operator gets through naming no project: "" is a
 * scope no row belongs to, so such a call finds nothing, as it always did.
 */
export function projectScope(project: string): ProjectScope {
  return Object.freeze({ projects: Object.freeze([project]) }) as unknown as ProjectScope;
}

/** Whether `project` (a row's owner, null when it has none) is inside the scope. */
export function inProjectScope(scope: ProjectScope, project: string | null | undefined): boolean {
  return project != null && scope.projects.includes(project);
}
