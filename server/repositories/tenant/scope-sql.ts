import { eq, inArray, type SQL } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import type { ProjectScope } from "../../domain/project-scope.js";

/** `column IN (the scope's projects)`: the one condition every tenant read and write carries. */
export function projectIn(column: PgColumn, scope: ProjectScope): SQL {
  const [only, ...more] = scope.projects;
  // A scope has at least one project (see projectScope); one is the common case and the simpler plan.
  return more.length === 0 ? eq(column, only!) : inArray(column, [...scope.projects]);
}
